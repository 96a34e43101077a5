import pytest
import torch

from msup.catalog import validate_sparsities
from msup.coats import (
    CoatedWeight,
    coat_levels,
    kept_counts,
    level_counts,
    level_fractions,
)
from msup.errors import InputError


@pytest.mark.parametrize("n", [1, 7, 100, 1001, 4096])
@pytest.mark.parametrize("sparsities", [(0.5,), (0.7, 0.9212, 0.9685), (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.99)])
def test_every_level_holds_the_exact_count(n, sparsities):
    scores = torch.randn(n)
    levels = coat_levels(scores, kept_counts(n, sparsities))
    observed = torch.bincount(levels.long(), minlength=len(sparsities) + 1).tolist()
    assert observed == list(level_counts(n, sparsities))


def test_counts_are_exact_when_all_scores_tie():
    scores = torch.ones(10, 10)
    levels = coat_levels(scores, kept_counts(100, (0.5, 0.8)))
    assert torch.bincount(levels.flatten().long()).tolist() == [50, 30, 20]


def test_kept_counts_round_half_up_without_float_noise():
    assert kept_counts(100, (0.7,)) == (30,)
    assert kept_counts(10, (0.25,)) == (8,)  # 7.5 rounds up
    assert kept_counts(10, (0.35,)) == (7,)  # 6.5 rounds up
    assert kept_counts(3, (0.9,)) == (0,)


def test_coats_are_nested_and_follow_score_magnitude():
    scores = torch.randn(64, 32)
    levels = coat_levels(scores, kept_counts(scores.numel(), (0.5, 0.75, 0.9)))
    magnitude = scores.abs().flatten()
    flat = levels.flatten()
    for level in range(1, 4):
        inside, outside = magnitude[flat >= level], magnitude[flat < level]
        assert inside.min() >= outside.max()


def test_one_coat_is_the_top_k_mask():
    scores = torch.randn(1000)
    levels = coat_levels(scores, kept_counts(1000, (0.7,)))
    top = torch.zeros(1000, dtype=torch.uint8)
    top[scores.abs().topk(300).indices] = 1
    assert torch.equal(levels, top)


def test_level_fractions_match_definition():
    assert level_fractions((0.7, 0.9)) == pytest.approx((0.7, 0.2, 0.1))


@pytest.mark.parametrize(
    "bad, message",
    [
        ((), "at least one"),
        ((0.5, 0.5), "strictly increase"),
        ((0.9, 0.5), "sparsity_2=0.5"),
        ((0.0,), "sparsity_1=0.0"),
        ((1.0,), "outside"),
        ((float("nan"),), "outside"),
    ],
)
def test_bad_sparsities_name_the_value(bad, message):
    with pytest.raises(InputError, match=message):
        validate_sparsities(bad)


def test_coat_count_must_match_the_list():
    with pytest.raises(ValueError, match="coats=2"):
        validate_sparsities((0.5, 0.7, 0.9), coats=2)


@pytest.mark.parametrize("grad_scale", [3.0, 1.0])
def test_straight_through_gradient_matches_hand_computation(grad_scale):
    scores = torch.tensor([0.5, -2.0, 0.1, -0.3], requires_grad=True)
    weight = torch.tensor([0.2, -0.2, 0.2, 0.2])
    levels = torch.tensor([1.0, 3.0, 0.0, 2.0])
    out = CoatedWeight.apply(scores, weight, levels, grad_scale)
    assert torch.equal(out.detach(), weight * levels)
    upstream = torch.tensor([1.0, 2.0, 3.0, 4.0])
    out.backward(upstream)
    # dL/ds = sign(s) * grad_scale * upstream * weight, whatever the level
    expected = torch.tensor([1 * 0.2, -1 * 2.0 * -0.2, 3.0 * 0.2, -1 * 4.0 * 0.2]) * grad_scale
    assert torch.allclose(scores.grad, expected)


@pytest.mark.parametrize("sparsities", [(0.3, 0.5, 0.6, 0.9), (0.5, 0.51, 0.52), (0.1, 0.99)])
def test_exact_nested_levels_with_many_ties_and_a_wide_range(sparsities):
    """Heavy ties and values spanning many magnitudes: inner coats share histogram bins."""
    magnitudes = torch.cat([torch.randint(0, 6, (3000,)).float(), torch.logspace(-8, 8, 1000)])
    scores = magnitudes[torch.randperm(magnitudes.numel())] * torch.sign(torch.randn(4000))
    levels = coat_levels(scores, kept_counts(4000, sparsities)).long()
    assert torch.bincount(levels, minlength=len(sparsities) + 1).tolist() == list(level_counts(4000, sparsities))
    for level in range(1, len(sparsities) + 1):
        assert scores.abs()[levels >= level].min() >= scores.abs()[levels < level].max()


# Weights kept per coat by the M-Sup authors' code (its percentile threshold, then |score| >= threshold),
# recorded with benchmarks/reference_agreement.py on random scores: (layer size, sparsities) -> counts.
REFERENCE_KEPT = {
    (36864, (0.7, 0.9)): (11059, 3687),
    (36864, (0.7, 0.9212, 0.9685)): (11059, 2905, 1162),
    (36864, (0.6, 0.8, 0.9, 0.95)): (14746, 7373, 3687, 1844),
    (16384, (0.7, 0.9212, 0.9685)): (4915, 1291, 517),
    (2560, (0.6, 0.8, 0.9, 0.95)): (1024, 512, 256, 128),
    (3456, (0.7, 0.9212, 0.9685)): (1037, 273, 109),
}


@pytest.mark.parametrize(("n", "sparsities"), sorted(REFERENCE_KEPT))
def test_kept_counts_are_within_one_weight_of_the_reference_implementation(n, sparsities):
    """The reference reads its threshold at sorted index 1 + floor(p (n - 1)); msup rounds n (1 - p) half up."""
    ours, theirs = kept_counts(n, sparsities), REFERENCE_KEPT[(n, sparsities)]
    assert all(abs(a - b) <= 1 for a, b in zip(ours, theirs))
    assert theirs == tuple(n - 1 - int(p * (n - 1)) for p in sparsities)
