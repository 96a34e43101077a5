import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msup.errors import InputError
from msup.search.config.space import parse_space, sparsities_from, train_overrides

SPACE = {
    "parameters": {
        "coats": {"type": "int", "low": 1, "high": 6},
        "outer_density": {"type": "float", "low": 0.001, "high": 0.9, "log": True},
        "coat_keep": {"type": "float", "low": 0.01, "high": 0.99},
        "lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
        "scale_init": {"type": "categorical", "choices": ["density", "unscaled"]},
        "momentum": 0.8,
        "optim.warmup_epochs": {"type": "int", "low": 0, "high": 2, "when": {"coats": [2, 3]}},
    }
}


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_sampled_sparsities_are_valid_by_construction(seed):
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    values = space.sample(study.ask())
    p = [values[f"sparsity_{i}"] for i in range(1, values["coats"] + 1)]
    assert all(0 < a < b < 1 for a, b in zip(p, p[1:])) and 0 < p[0] < 1
    assert p == sparsities_from(values)
    nested = train_overrides(values)
    assert nested["mask"] == {"coats": values["coats"], "sparsities": p, "scale_init": values["scale_init"]}
    assert nested["optim"]["lr"] == values["lr"] and nested["optim"]["momentum"] == 0.8
    assert nested["mask"]["scale_init"] in ("density", "unscaled")
    assert ("warmup_epochs" in nested["optim"]) == (values["coats"] in (2, 3))


def test_one_coat_space_needs_no_coat_keep():
    space = parse_space({"parameters": {"coats": 1, "outer_density": 0.3}})
    values = space.sample(optuna.create_study().ask())
    assert values["sparsity_1"] == pytest.approx(0.7) and values["coats"] == 1


@pytest.mark.parametrize(
    "parameters, message",
    [
        ({"lr": {"type": "floaty", "low": 0, "high": 1}}, "parameters.lr.type: 'floaty' is not one of"),
        ({"lr": {"type": "float", "low": 1, "high": 0.1}}, "lr.low: 1 is above high (0.1)"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, "must be > 0 for a log"),
        ({"lr": {"type": "float", "low": "a", "high": 1}}, "parameters.lr.low: 'a' must be a finite number"),
        ({"lr": {"type": "float", "low": 0.1, "high": 1, "lo": 2}}, "parameters.lr.lo: unknown key"),
        ({"lr": [0.1, 0.2]}, "a list is ambiguous"),
        ({"x": {"type": "categorical", "choices": []}}, "choices: [] must be a non-empty list"),
        ({"coats": {"type": "int", "low": 1, "high": 3}}, "needs outer_density"),
        ({"outer_density": {"type": "float", "low": 0.1, "high": 1.0}, "coat_keep": 0.5}, "must lie inside (0, 1)"),
        ({"lr": {"type": "float", "low": 0.1, "high": 1, "when": {"nope": [1]}}}, "refers to unknown parameter 'nope'"),
    ],
)
def test_malformed_spaces_name_the_key(parameters, message):
    with pytest.raises(InputError) as exc:
        parse_space({"parameters": parameters})
    assert message in str(exc.value)


def test_all_problems_reported_at_once():
    with pytest.raises(InputError) as exc:
        parse_space({"parameters": {"a": {"type": "x"}, "b": {"type": "int", "low": 3, "high": 1}}, "extra": 1})
    lines = str(exc.value).splitlines()
    assert len(lines) == 3
