import math

import pytest

from msup.sizes import Inventory, entropy_bits_per_weight, model_size, unary_bits

PAPER_P = (0.7, 0.9212, 0.9685)


def test_unary_and_entropy_bits_per_weight_of_the_paper_setting():
    size = model_size(Inventory((10_000_000,), 0, 0, 0), PAPER_P)
    assert size.paper_bits_per_weight == pytest.approx(1.3788, abs=1e-4)
    assert size.entropy_bits_per_weight == pytest.approx(1.207, abs=1e-3)
    edge_popup = model_size(Inventory((10_000_000,), 0, 0, 0), (0.7,))
    assert edge_popup.paper_bits_per_weight == 1.0
    assert edge_popup.entropy_bits_per_weight == pytest.approx(0.881, abs=1e-3)


def test_paper_formula_by_hand():
    # n + round(n * 0.3) + round(n * 0.0788) bits for n = 1001, plus 32 bits per gamma
    assert unary_bits(1001, PAPER_P) == 1001 + 300 + 79
    size = model_size(Inventory((1001,), dense_weights=0, bn_gamma=10, bn_beta=10), PAPER_P)
    assert size.paper_mib * 8 * 2**20 == pytest.approx(1001 + 300 + 79 + 320)
    assert size.dense_mib * 8 * 2**20 == pytest.approx(32 * (1001 + 20))


def test_entropy_of_a_histogram():
    assert entropy_bits_per_weight([1, 1, 1, 1]) == pytest.approx(2.0)
    assert entropy_bits_per_weight([5, 0]) == 0.0
    assert entropy_bits_per_weight([3, 1]) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))


def test_dense_layers_cost_full_precision_in_every_accounting():
    base = model_size(Inventory((1000,), 0, 0, 0), (0.5,))
    with_dense = model_size(Inventory((1000,), 100, 0, 0), (0.5,))
    for field in ("paper_mib", "entropy_mib", "dense_mib"):
        assert getattr(with_dense, field) - getattr(base, field) == pytest.approx(3200 / (8 * 2**20))
