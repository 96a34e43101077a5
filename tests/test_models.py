import pytest
import torch
from torch import nn

from msup.catalog import dataset_info
from msup.errors import InputError
from msup.layers import MaskConfig, supermask_layers
from msup.models import ModelSpec, create_model, list_models, model_entry
from msup.sizes import inventory

# Masked weights (conv + linear weights, no biases) of each architecture.
KNOWN_MASKED_WEIGHTS = {
    ("mlp", "digits"): 64 * 256 + 256 * 256 + 256 * 10,
    ("cnn1d", "mnist1d"): 1 * 32 * 5 + 2 * 32 * 32 * 5 + 32 * 10 * 10,
    ("conv2", "cifar10"): 3 * 64 * 9 + 64 * 64 * 9 + 64 * 16 * 16 * 256 + 256 * 256 + 256 * 10,
    ("conv4", "cifar10"): 2_425_024,
    ("conv6", "cifar10"): 2_261_184,
    ("conv8", "cifar10"): 5_275_840,
    ("resnet18", "cifar10"): 11_164_352,
    ("resnet50", "imagenet"): 25_502_912,
    ("resnet101", "imagenet"): 44_442_816,
    ("wide_resnet50_2", "imagenet"): 68_814_016,  # 68,883,240 params - 1,000 fc bias - 68,224 BN
}


def test_registry_lists_every_model():
    assert sorted({name for name, _ in KNOWN_MASKED_WEIGHTS}) == list_models()
    assert list_models("conv*") == ["conv2", "conv4", "conv6", "conv8"]


@pytest.mark.parametrize("name, dataset", sorted(KNOWN_MASKED_WEIGHTS))
def test_masked_weight_counts(name, dataset):
    data = dataset_info(dataset)
    model = create_model(name, data.num_classes, data.input_shape, MaskConfig((0.5,)))
    assert inventory(model).masked_weights == KNOWN_MASKED_WEIGHTS[name, dataset]
    assert inventory(model).dense_weights == 0


@pytest.mark.parametrize("name", ["mlp", "conv4", "resnet18", "cnn1d"])
def test_forward_shapes_and_dense_variant(name):
    data = dataset_info(model_entry(name).default_dataset)
    x = torch.randn(2, *data.input_shape)
    masked = create_model(name, data.num_classes, data.input_shape, MaskConfig((0.5, 0.8)))
    dense = create_model(name, data.num_classes, data.input_shape)
    assert masked(x).shape == dense(x).shape == (2, data.num_classes)
    assert supermask_layers(masked) and not supermask_layers(dense)


def test_spec_round_trip_rebuilds_identical_model():
    spec = ModelSpec("conv2", 10, (3, 32, 32), MaskConfig((0.6, 0.9), seed=5))
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    a, b = spec.build(), again.build()
    for (_, la), (_, lb) in zip(supermask_layers(a), supermask_layers(b)):
        assert torch.equal(la.weight, lb.weight) and torch.equal(la.scores, lb.scores)


def test_width_scales_conv_nets_and_only_them():
    quarter = create_model("conv4", 10, (1, 28, 28), MaskConfig((0.5,)), width=0.25)
    widths = [m.out_channels for m in quarter.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [16, 16, 32, 32]
    convs, linears = 1 * 16 * 9 + 16 * 16 * 9 + 16 * 32 * 9 + 32 * 32 * 9, 32 * 7 * 7 * 64 + 64 * 64 + 64 * 10
    assert inventory(quarter).masked_weights == convs + linears
    spec = ModelSpec("conv2", 10, (1, 28, 28), MaskConfig((0.5,)), width=0.5)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert ModelSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "width"}).width == 1.0  # older files
    with pytest.raises(InputError, match="mlp has no width multiplier"):
        create_model("mlp", 10, (1, 8, 8), width=0.5)


def test_unknown_model_and_bad_shapes_are_input_errors():
    with pytest.raises(InputError, match="unknown model 'nope'"):
        create_model("nope", 10, (1, 8, 8))
    with pytest.raises(InputError, match="divisible by 8"):
        create_model("conv6", 10, (1, 12, 12))
    with pytest.raises(InputError, match="3-channel"):
        create_model("resnet50", 10, (1, 32, 32))


def test_non_affine_batchnorm_option():
    model = create_model("mlp", 10, (1, 8, 8), MaskConfig((0.5,)), bn_affine=False)
    assert all(not m.affine for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    assert inventory(model).bn_gamma == 0


def test_batchnorm_option_of_conv_nets():
    plain = create_model("conv4", 10, (1, 28, 28), MaskConfig((0.5,)), width=0.25)
    normed = create_model("conv4", 10, (1, 28, 28), MaskConfig((0.5,)), width=0.25, batchnorm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert [m.num_features for m in normed.modules() if isinstance(m, nn.BatchNorm2d)] == [16, 16, 32, 32]
    assert inventory(normed).bn_gamma == 96 and inventory(normed).masked_weights == inventory(plain).masked_weights
    assert normed(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    spec = ModelSpec("conv4", 10, (1, 28, 28), MaskConfig((0.5,)), width=0.25, batchnorm=True)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert not ModelSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "batchnorm"}).batchnorm
    with pytest.raises(InputError, match="mlp has no BatchNorm option"):
        create_model("mlp", 10, (1, 8, 8), batchnorm=True)


def test_cnn1d_scales_with_width_and_reads_one_row_signals():
    half = create_model("cnn1d", 10, (1, 1, 40), MaskConfig((0.7,)), width=0.5)
    assert [m.out_channels for m in half.modules() if isinstance(m, nn.Conv1d)] == [16, 16, 16]
    assert inventory(half).masked_weights == 16 * 5 + 2 * 16 * 16 * 5 + 16 * 10 * 10
    with pytest.raises(InputError, match="height 1"):
        create_model("cnn1d", 10, (1, 8, 8))
