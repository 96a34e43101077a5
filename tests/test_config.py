"""TrainConfig: schema, validation that lists every problem, overrides, model spec."""

from pathlib import Path

import pytest

from msup.config import TrainConfig, apply_overrides, load_config
from msup.errors import InputError
from msup.safe_yaml import parse_yaml

SHIPPED = sorted((Path(__file__).parents[1] / "studies" / "train").glob("*.yaml"))


def _problems(raw):
    with pytest.raises(InputError) as err:
        TrainConfig.from_dict(raw)
    lines = [line.strip() for line in str(err.value).splitlines()]
    return lines[1:] if lines[0].endswith(":") else lines  # several problems come under a heading


def test_embedded_default_is_the_shipped_digits_config():
    assert load_config(SHIPPED[0].parent / "digits-mlp.yaml") == TrainConfig() == TrainConfig.from_dict({})


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_configs_are_valid_and_round_trip(path):
    config = load_config(path)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.model_spec().name == config.model.name


def test_every_problem_is_reported_at_once_with_its_key_path():
    problems = _problems({
        "optim": {"lr": -0.1, "lrr": 0.1, "epochs": 0, "momentum": 1.0},
        "model": {"name": "foo", "dense": "yes"},
        "mask": {"sparsities": [0.9, 0.5]},
        "runtime": {"device": "tpu"},
        "optm": {},
    })
    expected = [
        "optm: unknown key; did you mean optim?",
        "optim.lrr: unknown key; did you mean lr?",
        "optim.lr: -0.1 must be > 0",
        "optim.epochs: 0 must be >= 1",
        "optim.momentum: 1.0 must be < 1",
        "model.dense: 'yes' must be true or false",
        "runtime.device: 'tpu' is not one of auto, cpu, cuda",
        "mask.sparsities: sparsities must strictly increase",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    name = next(p for p in problems if p.startswith("model.name"))
    assert "'foo' is not one of" in name and "mlp" in name and "resnet50" in name
    assert len(problems) == len(expected) + 1


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"optim": {"epochs": True}}, "optim.epochs: True must be an integer"),
        ({"optim": {"epochs": 2.5}}, "optim.epochs: 2.5 must be an integer"),
        ({"optim": {"lr": "fast"}}, "optim.lr: 'fast' must be a finite number"),
        ({"optim": {"lr": float("nan")}}, "optim.lr: nan must be a finite number"),
        ({"optim": {"batch_size": 5000}}, "optim.batch_size: 5000 is larger than the training split of digits"),
        ({"optim": {"warmup_epochs": 30}}, "optim.warmup_epochs: 30 must be < optim.epochs (30)"),
        ({"optim": {"nesterov": True, "momentum": 0.0}}, "optim.nesterov: true needs optim.momentum > 0"),
        ({"mask": {"sparsities": [0.5, 0.9], "coats": 3}}, "mask.sparsities: coats=3 does not match 2 sparsities"),
        ({"mask": {"sparsities": []}}, "mask.sparsities: [] must be a non-empty list"),
        ({"mask": {"sparsities": [0.5, "0.9"]}}, "mask.sparsities: [0.5, '0.9'] must be a list of numbers"),
        ({"model": {"width": 1e39}}, "model.width: 1e+39 must be a finite number within float32 range"),
        ({"data": {"name": "imagenet", "download": True}}, "data.download: imagenet cannot be downloaded"),
        ({"data": {"name": "mnist"}}, "data.name: 'mnist' is not one of cifar10, cifar100, digits, imagenet"),
        ({"data": 3}, "data: 3 must be a mapping"),
        ({"optim": {"epochs": "1"}}, "optim.epochs: '1' must be an integer"),
    ],
)
def test_single_problems(raw, message):
    assert any(p.startswith(message) for p in _problems(raw)), _problems(raw)


def test_cross_checks_wait_for_valid_inputs():
    """A bad epoch count must not also produce a misleading warmup complaint."""
    assert _problems({"optim": {"epochs": -1, "warmup_epochs": 5}}) == ["optim.epochs: -1 must be >= 1"]


def test_overrides_parse_values_as_yaml():
    config = TrainConfig().with_overrides(["optim.lr=1e-3", "mask.sparsities=[0.5, 0.8]", "model.dense=true"])
    assert config.optim.lr == 0.001 and config.mask.sparsities == (0.5, 0.8) and config.model.dense
    assert config.model_spec().mask is None  # the dense baseline
    with pytest.raises(InputError, match="optim.lrr: unknown key; did you mean lr"):
        TrainConfig().with_overrides(["optim.lrr=0.1"])
    with pytest.raises(InputError, match="expected SECTION.KEY=VALUE"):
        apply_overrides({}, ["lr0.1"])


def test_yaml_reads_exponent_floats_as_numbers():
    assert parse_yaml("a: 1e-4\nb: 5E+3\nc: '1e-4'") == {"a": 1e-4, "b": 5000.0, "c": "1e-4"}


def test_model_spec_carries_dataset_shape_and_seed():
    spec = TrainConfig().with_overrides(["runtime.seed=7", "mask.sparsities=[0.6]"]).model_spec()
    assert (spec.name, spec.num_classes, spec.input_shape) == ("mlp", 10, (1, 8, 8))
    assert spec.mask.seed == 7 and spec.mask.sparsities == (0.6,)


def test_load_config_reports_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InputError, match="mapping"):
        load_config(tmp_path / "list.yaml")
