import math

import pytest
import torch
import torchvision
from torch import nn

from msup.coats import kept_counts
from msup.errors import InputError
from msup.layers import (
    MaskConfig,
    MSupConv1d,
    MSupConv2d,
    MSupLinear,
    convert_to_supermask,
    refresh_levels,
    supermask_layers,
)


def test_frozen_weights_are_reproducible_from_the_seed():
    a = MSupConv2d(8, 16, 3, mask=MaskConfig((0.5,), seed=3), name="c")
    b = MSupConv2d(8, 16, 3, mask=MaskConfig((0.5,), seed=3), name="c")
    c = MSupConv2d(8, 16, 3, mask=MaskConfig((0.5,), seed=4), name="c")
    assert torch.equal(a.weight, b.weight) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.weight, c.weight)
    assert "weight" not in a.state_dict() and "scores" in a.state_dict()
    assert [n for n, p in a.named_parameters()] == ["scores"]


def test_signed_constant_scale_uses_outer_coat_density():
    layer = MSupLinear(400, 300, mask=MaskConfig((0.75, 0.9)))
    sigma = math.sqrt(2) / math.sqrt(400 * 0.25)
    assert layer.sigma == pytest.approx(sigma)
    assert torch.allclose(layer.weight.abs(), torch.full_like(layer.weight, sigma))
    positive = (layer.weight > 0).float().mean().item()
    assert abs(positive - 0.5) < 0.01


@pytest.mark.parametrize(
    "scale_init, fan_factor",
    [("unscaled", 1.0), ("density", 0.25), ("variance_preserving", 0.15 * 1 + 0.1 * 4)],
)
def test_scale_init_modes(scale_init, fan_factor):
    layer = MSupLinear(400, 10, mask=MaskConfig((0.75, 0.9), scale_init=scale_init, init_scale=2.0))
    assert layer.sigma == pytest.approx(2.0 * math.sqrt(2 / (400 * fan_factor)))


def test_variance_preserving_init_gives_kaiming_variance():
    layer = MSupLinear(1000, 1000, mask=MaskConfig((0.5, 0.8, 0.95), scale_init="variance_preserving"))
    effective = layer.effective_weight().detach()
    assert effective.var().item() == pytest.approx(2 / 1000, rel=0.05)


def test_kaiming_normal_weights_and_score_inits():
    layer = MSupConv2d(64, 64, 3, mask=MaskConfig((0.5,), weight_init="kaiming_normal", score_init="kaiming_uniform"))
    assert layer.weight.std().item() == pytest.approx(layer.sigma, rel=0.05)
    bound = 1 / math.sqrt(64 * 9)  # kaiming_uniform(a=sqrt(5)) bound
    assert layer.scores.abs().max().item() <= bound + 1e-6
    normal = MSupConv2d(64, 64, 3, mask=MaskConfig((0.5,)))
    assert normal.scores.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.05)  # fan_out


def test_one_coat_forward_is_edge_popup():
    torch.manual_seed(0)
    layer = MSupConv2d(4, 8, 3, padding=1, mask=MaskConfig((0.7,)))
    x = torch.randn(2, 4, 6, 6)
    k = round(layer.scores.numel() * 0.3)
    mask = torch.zeros(layer.scores.numel())
    mask[layer.scores.abs().flatten().topk(k).indices] = 1
    expected = nn.functional.conv2d(x, layer.weight * mask.view_as(layer.weight), padding=1)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def _train(refresh: str, steps: int = 5) -> torch.Tensor:
    torch.manual_seed(0)
    layer = MSupLinear(20, 5, mask=MaskConfig((0.5, 0.8), refresh=refresh))
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    data = torch.randn(16, 20)
    for _ in range(steps):
        opt.zero_grad()
        layer(data).pow(2).mean().backward()
        opt.step()
        if refresh == "step":
            refresh_levels(layer)
    return layer.levels()


def test_cached_refresh_per_step_equals_recompute_in_every_forward():
    cached, forward = _train("step"), _train("forward")
    assert torch.equal(cached, forward)
    assert cached.sum() > 0


def test_levels_are_recomputed_after_loading_scores():
    a = MSupLinear(10, 10, mask=MaskConfig((0.5,)))
    b = MSupLinear(10, 10, mask=MaskConfig((0.5,), seed=9))
    a.levels()
    b.levels()
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.levels(), b.levels())


def test_gradient_normalisation_divides_by_coat_count():
    grads = []
    for normalize in (False, True):
        layer = MSupLinear(8, 4, mask=MaskConfig((0.2, 0.5, 0.8), grad_normalize=normalize))
        layer(torch.ones(1, 8)).sum().backward()
        grads.append(layer.scores.grad)
    assert torch.allclose(grads[0], 3 * grads[1])


def test_bias_is_refused():
    with pytest.raises(InputError, match="bias"):
        MSupLinear(3, 3, bias=True, mask=MaskConfig((0.5,)))


def test_convert_torchvision_model_replaces_every_layer():
    model = torchvision.models.resnet18(num_classes=7)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    convert_to_supermask(model, MaskConfig((0.5, 0.9)), bn_affine=False)
    layers = supermask_layers(model)
    assert len(layers) == convs + 1
    assert all(not bn.affine for bn in model.modules() if isinstance(bn, nn.BatchNorm2d))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert {n for n, p in model.named_parameters()} == {f"{n}.scores" for n, _ in layers}


def test_convert_can_keep_first_and_last_dense():
    model = torchvision.models.resnet18(num_classes=7)
    convert_to_supermask(model, MaskConfig((0.5,)), dense_first_last=True)
    assert type(model.conv1) is nn.Conv2d and type(model.fc) is nn.Linear
    assert isinstance(model.layer1[0].conv1, MSupConv2d)


@pytest.mark.parametrize("sparsities, scale_init", [((0.7,), "density"), ((0.7, 0.9212, 0.9685), "density"),
                                                    ((0.5, 0.75, 0.9), "variance_preserving")])
def test_conv1d_is_the_2d_layer_on_one_row(sparsities, scale_init):
    """Same frozen weights, scores, levels, outputs and straight-through gradients as a (1, k) 2-D conv."""
    mask = MaskConfig(sparsities, scale_init=scale_init, seed=2)
    one = MSupConv1d(4, 8, 5, stride=2, padding=2, mask=mask, name="c")
    two = MSupConv2d(4, 8, (1, 5), stride=(1, 2), padding=(0, 2), mask=mask, name="c")
    assert one.sigma == two.sigma and one.kept == two.kept == kept_counts(8 * 4 * 5, sparsities)
    assert torch.equal(one.weight, two.weight.squeeze(2)) and torch.equal(one.scores, two.scores.squeeze(2))
    x = torch.randn(3, 4, 40)
    out_one, out_two = one(x), two(x.unsqueeze(2)).squeeze(2)
    assert torch.allclose(out_one, out_two, atol=1e-6)
    assert torch.equal(one.levels(), two.levels().squeeze(2))
    levels = one.levels().flatten()
    assert [int((levels >= i).sum()) for i in range(1, len(sparsities) + 1)] == list(one.kept)
    out_one.square().sum().backward()
    out_two.square().sum().backward()
    assert torch.allclose(one.scores.grad, two.scores.grad.squeeze(2), atol=1e-5)


def test_convert_replaces_conv1d_layers():
    model = nn.Sequential(nn.Conv1d(1, 6, 5, padding=2, bias=False), nn.Flatten(), nn.Linear(60, 3, bias=False))
    convert_to_supermask(model, MaskConfig((0.5, 0.8)))
    assert isinstance(model[0], MSupConv1d) and model[0].padding == (2,)
    assert model(torch.randn(2, 1, 10)).shape == (2, 3)
