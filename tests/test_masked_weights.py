"""Masked layers: top-k with straight-through, fixed masks that stay applied, random weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from bench.models import PrunableConv2d, PrunableLinear, build_model, prunable_layers
from bench.models.masked_weights import RandomWeights, pruned_count, topk_mask, trainable_parameters
from bench.rng import kaiming_normal, signed_constant


@pytest.mark.parametrize("density", [0.5, 0.1, 0.02, 1.0])
def test_topk_keeps_exactly_the_largest_magnitudes(density):
    scores = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(0))
    mask = topk_mask(scores, density)
    n = scores.numel()
    assert int(mask.sum()) == n - pruned_count(n, density)
    kept = scores.abs()[mask.bool()]
    dropped = scores.abs()[~mask.bool()]
    if len(dropped):
        assert kept.min() > dropped.max()


def test_straight_through_gradient_reaches_the_scores():
    layer = PrunableLinear(6, 4, bias=False)
    layer.use_scores(0.5, torch.Generator().manual_seed(1))
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(2))
    out = layer(x)
    out.square().sum().backward()
    # d/dM of sum((x (W*M)^T)^2) = (2 out)^T x * W, passed straight through |S| to the scores.
    expected = (2 * out.detach()).T @ x * layer.weight.detach() * layer.scores.detach().sign()
    torch.testing.assert_close(layer.scores.grad, expected)
    mask = topk_mask(layer.scores, 0.5)
    torch.testing.assert_close(layer.weight.grad, (2 * out.detach()).T @ x * mask)


def test_score_init_is_kaiming_uniform():
    layer = PrunableConv2d(16, 32, 3)
    layer.use_scores(0.5, torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(16 * 9)
    assert layer.scores.abs().max() <= bound and layer.scores.abs().max() > 0.9 * bound


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_fixed_masks_stay_applied_after_every_optimiser_step(optimizer):
    model = build_model("resnet20", 10, seed=0, width=0.25)
    g = torch.Generator().manual_seed(0)
    for _, layer in prunable_layers(model):
        layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.2)
    params = list(model.parameters())
    opt = (torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
           if optimizer == "sgd" else torch.optim.AdamW(params, lr=0.01, weight_decay=0.05))
    x = torch.randn(8, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        for name, layer in prunable_layers(model):
            pruned = layer.mask == 0
            assert torch.all(layer.weight[pruned] == 0), name
            assert torch.all(layer.weight.grad[pruned] == 0), name


def test_a_second_mask_never_revives_pruned_weights():
    layer = PrunableConv2d(4, 4, 3)
    first = torch.zeros_like(layer.weight)
    first.view(-1)[:50] = 1
    layer.set_mask(first)
    layer.set_mask(torch.ones_like(layer.weight))
    assert int(layer.mask.sum()) == 50 and layer.kept() == 50


def test_freezing_scores_keeps_the_forward():
    layer = PrunableConv2d(3, 8, 3, padding=1)
    layer.use_scores(0.3, torch.Generator().manual_seed(0))
    x = torch.randn(2, 3, 8, 8)
    before = layer(x)
    layer.freeze_scores()
    assert layer.scores is None and layer.mask is not None
    assert torch.equal(layer(x), before)


def test_random_weights_are_the_recipe_and_never_train():
    model = build_model("resnet20", 10, seed=0, width=0.25)
    layers = prunable_layers(model)
    for i, (_, layer) in enumerate(layers):
        fan_in = layer.weight[0].numel()
        layer.set_random_weights(RandomWeights("kaiming-normal", seed=7, stream=i, fan_in=fan_in))
        layer.use_scores(0.5, torch.Generator().manual_seed(i))
    first = layers[0][1]
    expected = kaiming_normal(tuple(first.weight.shape), first.weight[0].numel(), 7, 0)
    assert torch.equal(first.weight, expected)
    frozen = {id(layer.weight) for _, layer in layers}
    assert not frozen & {id(p) for p in trainable_parameters(model)}
    before = [layer.weight.clone() for _, layer in layers]
    opt = torch.optim.SGD(trainable_parameters(model), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    assert all(torch.equal(b, layer.weight) for b, (_, layer) in zip(before, layers))
    assert layers[0][1].scores.grad is not None


def test_signed_constant_and_tiled_prototypes():
    sc = RandomWeights("signed-constant", seed=3, stream=0, fan_in=9).materialize((2, 1, 3, 3))
    assert torch.equal(sc.abs(), torch.full_like(sc, math.sqrt(2 / 9)))
    assert torch.equal(sc.flatten(), signed_constant((18,), 9, 3, 0))
    tiled = RandomWeights("kaiming-normal", seed=3, stream=5, fan_in=100, period=7)
    w = tiled.materialize((4, 5)).flatten()
    v = kaiming_normal((7,), 100, 3, 5)
    assert torch.equal(w, torch.cat([v, v, v])[:20])  # restarts at v[0]
    prefix = RandomWeights("kaiming-normal", seed=3, stream=5, fan_in=100).materialize((3, 2))
    assert torch.equal(prefix.flatten(), kaiming_normal((30,), 100, 3, 5)[:6])


def test_mask_on_channels_last_weights_keeps_the_layout():
    layer = PrunableConv2d(4, 8, 3).to(memory_format=torch.channels_last)
    layer.set_mask(torch.rand(layer.weight.shape) < 0.5)
    assert layer.mask.is_contiguous(memory_format=torch.channels_last)


def test_scores_and_a_fixed_mask_do_not_mix():
    layer = PrunableConv2d(3, 4, 3)
    layer.set_mask(torch.rand(layer.weight.shape) < 0.5)
    with pytest.raises(ValueError, match="fixed mask"):
        layer.use_scores(0.5)
