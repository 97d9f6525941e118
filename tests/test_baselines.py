"""The pruning baselines: each score against a hand computation, and what each method does.

Importance are checked on tiny bias-free networks with fixed weights and the seed's pruning set,
against expected tensors computed here independently (explicit chain rule, an explicit
Hessian, closed forms, or autograd on a functional re-implementation). Then: random scores,
SynFlow against layer collapse, scoring that never touches the run's model, the magnitude
and LTH schedules, rewinding inside LTH, a short harness run, and (``--slow``) every
baseline end to end on real CIFAR-10.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bench.harness.one_run as harness_one_run
from baselines.grasp import TEMPERATURE, GraSP
from baselines.lth import LotteryTicket, LTHHparams, round_densities
from baselines.magnitude import MagnitudeAfterTraining, MagnitudeHparams, split_budget
from baselines.magnitude_init import MagnitudeAtInit
from baselines.random_pruning import RandomPruning
from baselines.snip import SNIP
from baselines.synflow import SynFlow, synflow_scores
from bench.cli import main
from bench.context import SearchCost
from bench.data import DATASETS, DeviceData
from bench.engine import state_snapshot
from bench.errors import BenchError
from bench.metrics import model_metrics
from bench.models import PrunableConv2d, PrunableLinear, build_model, prunable_layers
from bench.pruning import PRUNING_IMAGES_PER_CLASS, kept_count
from bench.recipe import Recipe
from bench.store import RunStore

SEED = 5

# ---------------------------------------------------------------------------- fixtures


def synthetic_data(n: int = 200, seed: int = 0) -> DeviceData:
    """CIFAR-10-shaped DeviceData of random uint8 images, n // 10 per class."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    return DeviceData(DATASETS["cifar10"], x, y, x[: n // 4], y[: n // 4])


@pytest.fixture(scope="module")
def data() -> DeviceData:
    return synthetic_data()


@pytest.fixture(scope="module")
def batch(data) -> tuple[torch.Tensor, torch.Tensor]:
    """The pruning set every data-driven method of seed SEED scores on (100 images)."""
    return data.pruning_batch(PRUNING_IMAGES_PER_CLASS, SEED)


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, layer in prunable_layers(model):
        mask = layer.current_mask()
        out[name] = (torch.ones_like(layer.weight, dtype=torch.bool) if mask is None
                     else mask.clone())
    return out


def total_weights(model: nn.Module) -> int:
    return sum(layer.weight.numel() for _, layer in prunable_layers(model))


class StubContext:
    """What a method sees of a RunContext; ``train`` records each phase instead of training.

    With ``fake_training`` every epoch moves every trainable tensor (and the BatchNorm
    statistics) by seeded noise while keeping pruned weights at zero, and the states at
    ``snapshot_epochs`` are returned as the engine returns them.
    """

    def __init__(self, model, *, density=0.5, seed=SEED, epochs=2, data=None,
                 fake_training=False):
        self.model = model
        self.density = density
        self.seed = seed
        self.recipe = Recipe(epochs=epochs, batch_size=32, lr=0.1)
        self.data = data if data is not None else synthetic_data()
        self.search = SearchCost()
        self.fake_training = fake_training
        self.calls: list[dict] = []

    def train(self, model=None, *, params=None, recipe=None, phase="train", final=None,
              snapshot_epochs=(), share=False):
        model = self.model if model is None else model
        recipe = recipe or self.recipe
        call = {"phase": phase, "epochs": recipe.epochs, "snapshot_epochs": snapshot_epochs,
                "share": share,
                "masks": masks_of(model), "start": state_snapshot(model), "snapshots": {}}
        self.calls.append(call)
        if 0 in snapshot_epochs:
            call["snapshots"][0] = state_snapshot(model)
        g = torch.Generator().manual_seed(len(self.calls))
        for epoch in range(1, recipe.epochs + 1):
            if self.fake_training:
                with torch.no_grad():
                    for p in model.parameters():
                        p.add_(0.05 * torch.randn(p.shape, generator=g))
                    for m in model.modules():
                        if isinstance(m, nn.BatchNorm2d):
                            m.running_mean.add_(0.1 * torch.randn(m.running_mean.shape,
                                                                  generator=g))
                    for _, layer in prunable_layers(model):
                        if layer.mask is not None:
                            layer.weight.mul_(layer.mask)
            if epoch in snapshot_epochs:
                call["snapshots"][epoch] = state_snapshot(model)
        call["end"] = state_snapshot(model)
        return SimpleNamespace(snapshots=call["snapshots"], epochs=recipe.epochs, steps=0,
                               seconds=0.0, log=[])


# ---------------------------------------------------------------------------- tiny networks

POOL = 4  # 32x32 -> 4x4 by 8x8 block means: 48 input features
HIDDEN, CLASSES = 4, 10


def tiny_mlp(seed: int = 1234) -> nn.Sequential:
    """AvgPool(4) -> Flatten -> PrunableLinear(48->4) -> ReLU -> PrunableLinear(4->10), no bias."""
    net = nn.Sequential(nn.AdaptiveAvgPool2d(POOL), nn.Flatten(),
                        PrunableLinear(3 * POOL * POOL, HIDDEN, bias=False), nn.ReLU(),
                        PrunableLinear(HIDDEN, CLASSES, bias=False))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net[2].weight.copy_(torch.randn(HIDDEN, 3 * POOL * POOL, generator=g))
        net[4].weight.copy_(torch.randn(CLASSES, HIDDEN, generator=g))
    return net


def pooled(x: torch.Tensor) -> torch.Tensor:
    """The tiny MLP's input features, by hand: means of 8x8 blocks, channel-major, float64."""
    n = x.shape[0]
    return x.double().reshape(n, 3, POOL, 8, POOL, 8).mean((3, 5)).reshape(n, -1)


def mlp_weights(net: nn.Sequential) -> tuple[torch.Tensor, torch.Tensor]:
    return net[2].weight.detach().double(), net[4].weight.detach().double()


def mlp_forward(a, w1, w2):
    pre = a @ w1.T
    return pre, pre.clamp(min=0), pre.clamp(min=0) @ w2.T


def mlp_grads(a, y, w1, w2, temperature=1.0, mean=False):
    """dL/dW1, dL/dW2 by the chain rule; L = CE(logits / T) summed (or averaged) over a."""
    pre, h, z = mlp_forward(a, w1, w2)
    dz = torch.softmax(z / temperature, 1) - F.one_hot(y, CLASSES).double()
    dz = dz / temperature / (len(y) if mean else 1)
    return ((dz @ w2) * (pre > 0)).T @ a, dz.T @ h


class TinyConvBN(nn.Module):
    """PrunableConv2d(3->3, k3, s4) -> BatchNorm -> ReLU -> global mean -> PrunableLinear."""

    def __init__(self, seed: int = 99) -> None:
        super().__init__()
        self.conv = PrunableConv2d(3, 3, 3, stride=4, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.fc = PrunableLinear(3, CLASSES, bias=False)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.5)
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g))
            self.bn.weight.copy_(torch.tensor([1.5, 0.7, 1.2]))
            self.bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
            self.bn.running_mean.copy_(torch.tensor([0.5, -0.5, 0.2]))
            self.bn.running_var.copy_(torch.tensor([4.0, 0.25, 2.0]))

    def forward(self, x):
        out = torch.relu(self.bn(self.conv(x)))
        return self.fc(out.mean((2, 3)))


def conv_bn_logits(net: TinyConvBN, wc, wf, x, training: bool, absolute: bool = False):
    """TinyConvBN written out by hand; BatchNorm from batch statistics when ``training``.

    ``absolute``: every BatchNorm tensor (affine and running statistics) by its |value|.
    """
    out = F.conv2d(x.double(), wc, stride=4, padding=1)
    if training:
        mean, var = out.mean((0, 2, 3)), out.var((0, 2, 3), unbiased=False)
    else:
        mean, var = net.bn.running_mean.double(), net.bn.running_var.double()
    gamma, beta = net.bn.weight.detach().double(), net.bn.bias.detach().double()
    if absolute:
        mean, var, gamma, beta = mean.abs(), var.abs(), gamma.abs(), beta.abs()
    out = (out - mean.view(1, 3, 1, 1)) / torch.sqrt(var.view(1, 3, 1, 1) + net.bn.eps)
    out = torch.relu(out * gamma.view(1, 3, 1, 1) + beta.view(1, 3, 1, 1))
    return out.mean((2, 3)) @ wf.T


def conv_bn_weights(net: TinyConvBN) -> tuple[torch.Tensor, torch.Tensor]:
    return (net.conv.weight.detach().double().requires_grad_(),
            net.fc.weight.detach().double().requires_grad_())


def assert_scores_close(got: dict, expected: dict, rel: float = 1e-4) -> None:
    assert set(got) == set(expected)
    scale = max(e.abs().max().item() for e in expected.values())
    assert scale > 0
    for name, e in expected.items():
        assert got[name].shape == e.shape, name
        torch.testing.assert_close(got[name].double(), e, rtol=rel, atol=rel * scale)


# ---------------------------------------------------------------------------- hand computations


def test_magnitude_init_score_is_abs_theta(data):
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    scores = MagnitudeAtInit().importance(net, StubContext(net, data=data))
    assert torch.equal(scores["2"].double(), w1.abs())
    assert torch.equal(scores["4"].double(), w2.abs())


def test_snip_score_by_the_chain_rule(data, batch):
    """|theta * dL/dtheta|, L = cross-entropy summed over the 100 pruning images."""
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    x, y = batch
    g1, g2 = mlp_grads(pooled(x), y, w1, w2)
    ctx = StubContext(net, data=data)
    scores = SNIP().importance(net, ctx)
    assert_scores_close(scores, {"2": (w1 * g1).abs(), "4": (w2 * g2).abs()})
    assert (ctx.search.forward_images, ctx.search.backward_images) == (100, 100)
    # Sanity: the explicit chain rule agrees with autograd on the same float64 function.
    t1, t2 = w1.clone().requires_grad_(), w2.clone().requires_grad_()
    _, _, z = mlp_forward(pooled(x), t1, t2)
    a1, a2 = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), (t1, t2))
    torch.testing.assert_close(a1, g1)
    torch.testing.assert_close(a2, g2)


def test_snip_sums_the_loss_over_several_pruning_batches(data, batch, monkeypatch):
    import baselines.snip as snip_module

    real = snip_module.pruning_batches
    monkeypatch.setattr(snip_module, "pruning_batches", lambda ctx: real(ctx, batch_size=32))
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    g1, g2 = mlp_grads(pooled(batch[0]), batch[1], w1, w2)  # one sum over all 100 images
    scores = SNIP().importance(net, StubContext(net, data=data))
    assert_scores_close(scores, {"2": (w1 * g1).abs(), "4": (w2 * g2).abs()})


def test_snip_scores_in_train_mode_with_batch_statistics(data, batch):
    """The net is in eval mode; SNIP must still use train-mode BatchNorm (batch statistics)."""
    net = TinyConvBN().eval()
    x, y = batch
    expected = {}
    for training in (True, False):
        wc, wf = conv_bn_weights(net)
        loss = F.cross_entropy(conv_bn_logits(net, wc, wf, x, training), y, reduction="sum")
        gc, gf = torch.autograd.grad(loss, (wc, wf))
        expected[training] = {"conv": (wc * gc).abs().detach(), "fc": (wf * gf).abs().detach()}
    assert not torch.allclose(expected[True]["conv"], expected[False]["conv"], rtol=0.05)
    scores = SNIP().importance(net, StubContext(net, data=data))
    assert_scores_close(scores, expected[True])
    assert not net.training


def grasp_expected(w1, w2, batches):
    """theta * (H g) for the tiny MLP, with the Hessian H written out as a 232x232 matrix.

    g = sum over batches of d(mean CE(logits / T))/dtheta; H = sum of the batches' Hessians.
    """
    theta = torch.cat([w1.flatten(), w2.flatten()])
    n1 = w1.numel()
    g = torch.zeros_like(theta)
    for x, y in batches:
        g1, g2 = mlp_grads(pooled(x), y, w1, w2, temperature=TEMPERATURE, mean=True)
        g += torch.cat([g1.flatten(), g2.flatten()])
    hg = torch.zeros_like(theta)
    for x, y in batches:
        a = pooled(x)

        def loss(t, a=a, y=y):
            _, _, z = mlp_forward(a, t[:n1].view_as(w1), t[n1:].view_as(w2))
            return F.cross_entropy(z / TEMPERATURE, y)

        hessian = torch.autograd.functional.hessian(loss, theta, vectorize=True)
        assert hessian.shape == (theta.numel(), theta.numel())
        hg += hessian @ g
    score = theta * hg
    return {"2": score[:n1].view_as(w1), "4": score[n1:].view_as(w2)}


def test_grasp_score_is_theta_times_hessian_gradient_product(data, batch):
    """Score theta * Hg with logits / 200 (the code's convention: it keeps the highest).

    methods.md says "keep the highest of -theta*Hg"; the GraSP paper and its official code
    remove the highest -theta*Hg, i.e. keep the highest theta*Hg. The code follows the paper
    and returns theta*Hg as the score, so that is what is checked here.
    """
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    ctx = StubContext(net, data=data)
    scores = GraSP().importance(net, ctx)
    expected = grasp_expected(w1, w2, [batch])
    assert_scores_close(scores, expected, rel=1e-3)
    assert (ctx.search.forward_images, ctx.search.backward_images) == (200, 300)
    positive = sum(int((e > 0).sum()) for e in expected.values())
    assert 0 < positive < total_weights(net)  # signs matter: the convention is observable


def test_grasp_sums_over_several_pruning_batches(data, batch, monkeypatch):
    import baselines.grasp as grasp_module

    real = grasp_module.pruning_batches
    monkeypatch.setattr(grasp_module, "pruning_batches", lambda ctx: real(ctx, batch_size=32))
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    x, y = batch
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 100, 32)]
    scores = GraSP().importance(net, StubContext(net, data=data))
    assert_scores_close(scores, grasp_expected(w1, w2, batches), rel=1e-3)


def test_grasp_keeps_the_highest_theta_hg(data, batch):
    """Pruning with GraSP to 50% keeps exactly the weights with the highest theta*Hg.

    (methods.md says -theta*Hg; the code follows the GraSP paper and its official code.)
    """
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    expected = grasp_expected(w1, w2, [batch])
    ctx = StubContext(net, density=0.5, data=data)
    GraSP().run(ctx)
    assert [c["phase"] for c in ctx.calls] == ["train"]
    masks = masks_of(net)
    kept = torch.cat([expected[n][masks[n]] for n in masks])
    pruned = torch.cat([expected[n][~masks[n]] for n in masks])
    assert len(kept) == kept_count(total_weights(net), 0.5)
    scale = max(e.abs().max().item() for e in expected.values())
    assert kept.min() >= pruned.max() - 1e-4 * scale
    assert kept.sum() > 0 > pruned.sum()


def test_grasp_uses_train_mode_batch_statistics(data, batch):
    net = TinyConvBN().eval()
    x, y = batch
    wc, wf = conv_bn_weights(net)
    loss = F.cross_entropy(conv_bn_logits(net, wc, wf, x, True) / TEMPERATURE, y)
    g = [t.detach() for t in torch.autograd.grad(loss, (wc, wf))]

    def f(wc_, wf_):
        return F.cross_entropy(conv_bn_logits(net, wc_, wf_, x, True) / TEMPERATURE, y)

    _, (hc, hf) = torch.autograd.functional.hvp(f, (wc.detach(), wf.detach()), tuple(g))
    expected = {"conv": wc.detach() * hc, "fc": wf.detach() * hf}
    scores = GraSP().importance(net, StubContext(net, data=data))
    assert_scores_close(scores, expected, rel=1e-3)
    assert not net.training


def synflow_expected(net: nn.Sequential) -> dict[str, torch.Tensor]:
    """Closed form for the tiny MLP on an all-ones image (ones after pooling too).

    With A1 = |W1 * M1|, A2 = |W2 * M2| every hidden unit is positive, R = 1' A2 A1 1, so
    dR/dA2[k, j] = (A1 1)_j and dR/dA1[j, i] = sum_k A2[k, j]; score = A * dR/dA.
    """
    a1, a2 = (layer.weight.detach().double() for layer in (net[2], net[4]))
    a1 = (a1 * (net[2].mask if net[2].mask is not None else 1)).abs()
    a2 = (a2 * (net[4].mask if net[4].mask is not None else 1)).abs()
    return {"2": a1 * a2.sum(0)[:, None], "4": a2 * a1.sum(1)[None, :]}


def test_synflow_score_closed_form():
    net = tiny_mlp()
    scores = synflow_scores(net)
    assert all(s.dtype == torch.float64 for s in scores.values())
    assert_scores_close(scores, synflow_expected(net), rel=1e-10)


def test_synflow_score_closed_form_on_a_masked_net():
    net = tiny_mlp()
    g = torch.Generator().manual_seed(3)
    net[2].set_mask(torch.rand(net[2].weight.shape, generator=g) < 0.5)
    net[4].set_mask(torch.rand(net[4].weight.shape, generator=g) < 0.7)
    scores = synflow_scores(net)
    expected = synflow_expected(net)
    assert_scores_close(scores, expected, rel=1e-10)
    assert (scores["2"][net[2].mask == 0] == 0).all()


def test_synflow_uses_eval_mode_and_absolute_values_everywhere():
    """|theta * dR/dtheta| on one all-ones image with every tensor (BatchNorm affine and
    running statistics included) replaced by its absolute value, BatchNorm in eval mode."""
    net = TinyConvBN().train()
    with torch.no_grad():
        net.bn.running_mean.copy_(torch.tensor([-0.5, 0.3, -0.2]))
    expected = {}
    for training in (False, True):
        wc, wf = (w.detach().abs().requires_grad_() for w in conv_bn_weights(net))
        ones = torch.ones(1, 3, 32, 32)
        r = conv_bn_logits(net, wc, wf, ones, training, absolute=True).sum()
        gc, gf = torch.autograd.grad(r, (wc, wf))
        expected[training] = {"conv": (wc * gc).abs().detach(), "fc": (wf * gf).abs().detach()}
    assert not torch.allclose(expected[True]["fc"], expected[False]["fc"], rtol=0.05)
    assert_scores_close(synflow_scores(net), expected[False], rel=1e-10)
    assert net.training


def test_synflow_method_counts_one_image_per_round(data):
    net = tiny_mlp()
    ctx = StubContext(net, density=0.2, data=data)
    SynFlow().run(ctx)
    assert ctx.search.forward_images == ctx.search.backward_images == 100  # 100 rounds
    assert model_metrics(net)["parameters_kept"] == kept_count(total_weights(net), 0.2)


# ---------------------------------------------------------------------------- random


def test_random_scores_are_seeded_iid_gaussians():
    model = build_model("resnet20", 10, seed=0, width=0.5)
    a = RandomPruning().importance(model, SimpleNamespace(seed=0))
    again = RandomPruning().importance(build_model("resnet20", 10, seed=3, width=0.5),
                                   SimpleNamespace(seed=0))
    other = RandomPruning().importance(model, SimpleNamespace(seed=1))
    for name, layer in prunable_layers(model):
        assert a[name].shape == layer.weight.shape
        assert torch.equal(a[name], again[name])  # the seed alone decides, not the weights
        assert not torch.equal(a[name], other[name])
    # two tensors of one shape get different draws
    assert not torch.equal(a["blocks.0.conv1"], a["blocks.0.conv2"])
    pooled_scores = torch.cat([s.flatten() for s in a.values()]).double()
    n = pooled_scores.numel()
    assert abs(pooled_scores.mean().item()) < 5 / math.sqrt(n)
    assert abs(pooled_scores.std().item() - 1) < 0.02
    ranked = pooled_scores.sort().values
    empirical = torch.arange(1, n + 1, dtype=torch.float64) / n
    ks = (torch.special.ndtr(ranked) - empirical).abs().max().item()
    assert ks < 1.95 / math.sqrt(n)  # Kolmogorov-Smirnov at 0.1% against N(0, 1)
    first, second = a["blocks.0.conv1"].flatten(), a["blocks.0.conv2"].flatten()
    assert abs(torch.corrcoef(torch.stack([first, second]))[0, 1].item()) < 5 / math.sqrt(576)


@pytest.mark.parametrize("density", [0.5, 0.1])
def test_random_pruning_density_is_close_to_the_target_in_every_layer(data, density):
    model = build_model("resnet20", 10, seed=0, width=0.5)
    ctx = StubContext(model, density=density, seed=0, data=data)
    RandomPruning().run(ctx)
    assert [c["phase"] for c in ctx.calls] == ["train"]
    metrics = model_metrics(model)
    assert metrics["parameters_kept"] == kept_count(total_weights(model), density)
    for name, layer in prunable_layers(model):
        n = layer.weight.numel()
        kept = metrics["density_per_tensor"][f"{name}.weight"] * n
        assert abs(kept - density * n) <= 5 * math.sqrt(n * density * (1 - density)) + 1, name


# ---------------------------------------------------------------------------- layer collapse


def test_synflow_does_not_collapse_resnet20_at_2_percent(data):
    model = build_model("resnet20", 10, seed=0, width=0.5, shortcut="B")
    ctx = StubContext(model, density=0.02, data=data)
    SynFlow().run(ctx)  # 100 rounds, exponential schedule, global threshold
    assert [c["phase"] for c in ctx.calls] == ["train"]
    metrics = model_metrics(model)
    assert metrics["layer_collapse"] is False and metrics["collapsed_tensors"] == []
    assert metrics["parameters_kept"] == kept_count(total_weights(model), 0.02)
    assert min(metrics["density_per_tensor"].values()) > 0
    assert ctx.search.forward_images == 100


def test_random_pruning_at_a_tenth_of_a_percent_collapses_named_layers(data):
    model = build_model("resnet20", 10, seed=0, width=0.5, shortcut="B")
    RandomPruning().run(StubContext(model, density=0.001, seed=0, data=data))
    metrics = model_metrics(model)
    empty = [f"{name}.weight" for name, layer in prunable_layers(model)
             if int(layer.mask.sum()) == 0]
    assert metrics["layer_collapse"] is True
    assert metrics["collapsed_tensors"] == empty
    assert "conv.weight" in empty  # the 216-weight stem conv (seed 0)
    assert metrics["parameters_kept"] == kept_count(total_weights(model), 0.001)


# ---------------------------------------------------------------------------- model untouched

SCORERS = {"snip": SNIP, "grasp": GraSP, "synflow": SynFlow, "random": RandomPruning,
           "magnitude-init": MagnitudeAtInit}


@pytest.mark.parametrize("training", [True, False], ids=["train-mode", "eval-mode"])
@pytest.mark.parametrize("method", list(SCORERS))
def test_scoring_leaves_the_model_unchanged(data, method, training):
    model = build_model("resnet20", 10, seed=0, width=0.25)
    g = torch.Generator().manual_seed(0)
    for _, layer in prunable_layers(model):
        layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.6)
    x = torch.randn(4, 3, 32, 32, generator=g)
    model.train()
    with torch.no_grad():
        model(x)  # non-trivial BatchNorm statistics
    model.eval()
    with torch.no_grad():
        reference = model(x)
    model.train(training)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {n: m.training for n, m in model.named_modules()}
    requires = {n: p.requires_grad for n, p in model.named_parameters()}

    scores = SCORERS[method]().importance(model, StubContext(model, data=data))

    assert set(scores) == {name for name, _ in prunable_layers(model)}
    for name, layer in prunable_layers(model):
        assert scores[name].shape == layer.weight.shape
        assert torch.isfinite(scores[name]).all()
    after = model.state_dict()
    assert list(after) == list(state)
    for key, value in state.items():
        assert torch.equal(after[key], value), key
    assert all(p.grad is None for p in model.parameters())
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: p.requires_grad for n, p in model.named_parameters()} == requires
    assert all(not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
               for m in model.modules())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), reference)


# ---------------------------------------------------------------------------- magnitude and LTH


def test_split_budget():
    assert split_budget(2, 0.5) == (1, 1)
    assert split_budget(3, 0.5) == (2, 1)
    assert split_budget(10, 0.5) == (5, 5)
    assert split_budget(160, 0.5) == (80, 80)
    assert split_budget(4, 0.25) == (1, 3)
    assert split_budget(10, 0.99) == (9, 1)  # fine-tuning gets at least one epoch
    assert split_budget(10, 0.01) == (1, 9)  # dense training too
    for epochs in range(2, 30):
        dense, finetune = split_budget(epochs, 0.3)
        assert dense + finetune == epochs and dense >= 1 and finetune >= 1
    with pytest.raises(BenchError):
        split_budget(1, 0.5)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError):
            MagnitudeHparams(dense_fraction=bad)


def test_round_densities():
    assert round_densities(0.5, 0.2) == pytest.approx([0.8, 0.64, 0.512, 0.5], rel=1e-12)
    assert round_densities(0.5, 0.2)[-1] == 0.5
    twenty = round_densities(0.2, 0.2)
    assert len(twenty) == 8 and twenty[-1] == 0.2
    assert twenty[:7] == pytest.approx([0.8 ** r for r in range(1, 8)], rel=1e-12)
    assert round_densities(0.64, 0.2) == pytest.approx([0.8, 0.64], rel=1e-12)  # no extra round
    assert round_densities(0.8, 0.2) == [0.8]
    assert round_densities(0.9, 0.2) == [0.9]
    assert round_densities(1.0, 0.2) == []
    assert len(round_densities(0.02, 0.2)) == math.ceil(math.log(0.02) / math.log(0.8)) == 18
    assert round_densities(0.25, 0.5) == [0.5, 0.25]
    for d in (0.5, 0.3, 0.1, 0.05, 0.02, 0.01):
        seq = [1.0, *round_densities(d, 0.2)]
        assert seq[-1] == d
        assert all(b / a >= 0.8 - 1e-12 and b < a for a, b in zip(seq, seq[1:]))
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError):
            LTHHparams(prune_fraction=bad)
    with pytest.raises(ValueError):
        LTHHparams(rewind_epoch=-1)


def _assert_top_magnitudes(previous_mask, end_state, new_masks, names):
    """The new masks keep the largest trained |weights| among the ones that were live."""
    kept, pruned = [], []
    for name in names:
        w = end_state[f"{name}.weight"].abs()
        live = previous_mask[name]
        kept.append(w[new_masks[name]])
        pruned.append(w[live & ~new_masks[name]])
        assert not (new_masks[name] & ~live).any()
    assert torch.cat(kept).min() >= torch.cat(pruned).max()


def test_lth_prunes_rewinds_and_retrains_in_rounds(data):
    model = build_model("resnet20", 10, seed=0, width=0.25)
    names = [name for name, _ in prunable_layers(model)]
    total = total_weights(model)
    ctx = StubContext(model, density=0.5, epochs=2, data=data, fake_training=True)
    assert LotteryTicket().run(ctx) is model
    assert [c["phase"] for c in ctx.calls] == [f"round{r}" for r in range(5)]
    assert [c["epochs"] for c in ctx.calls] == [2] * 5  # every round trains the full budget
    assert ctx.calls[0]["snapshot_epochs"] == (1,)
    assert all(c["share"] for c in ctx.calls)  # every round may be shared between densities
    snapshot = ctx.calls[0]["snapshots"][1]  # end of epoch 1 of the first training
    assert ctx.search.extra_epochs == 2 * 4
    for r, density in enumerate(round_densities(0.5, 0.2), 1):
        call, previous = ctx.calls[r], ctx.calls[r - 1]
        masks = call["masks"]
        assert sum(int(m.sum()) for m in masks.values()) == kept_count(total, density)
        _assert_top_magnitudes(previous["masks"], previous["end"], masks, names)
        for key, value in call["start"].items():  # rewound: snapshot values under the mask
            name = key.removesuffix(".weight")
            if name in masks:
                assert torch.equal(value[masks[name]], snapshot[key][masks[name]])
                assert (value[~masks[name]] == 0).all()
            elif not key.endswith(".mask"):
                assert torch.equal(value, snapshot[key]), key
    final = model_metrics(model)
    assert final["parameters_kept"] == kept_count(total, 0.5)
    for _, layer in prunable_layers(model):
        assert (layer.weight[layer.mask == 0] == 0).all()


def test_lth_rewind_epoch_zero_is_the_original_initialisation(data):
    model = build_model("resnet20", 10, seed=0, width=0.25)
    init = state_snapshot(model)
    ctx = StubContext(model, density=0.8, epochs=2, data=data, fake_training=True)
    LotteryTicket(LTHHparams(rewind_epoch=0)).run(ctx)
    assert ctx.calls[0]["snapshot_epochs"] == (0,)
    assert [c["phase"] for c in ctx.calls] == ["round0", "round1"]
    start, masks = ctx.calls[1]["start"], ctx.calls[1]["masks"]
    for name, mask in masks.items():
        key = f"{name}.weight"
        assert torch.equal(start[key][mask], init[key][mask])
    assert ctx.search.extra_epochs == 2


def test_lth_total_budget_splits_the_epochs(data):
    model = build_model("resnet20", 10, seed=0, width=0.25)
    ctx = StubContext(model, density=0.5, epochs=10, data=data)
    LotteryTicket(LTHHparams(budget="total")).run(ctx)
    assert [c["epochs"] for c in ctx.calls] == [2] * 5
    assert ctx.search.extra_epochs == 8
    with pytest.raises(BenchError):
        LotteryTicket(LTHHparams(budget="total")).run(
            StubContext(build_model("resnet20", 10, width=0.25), density=0.5, epochs=4))
    with pytest.raises(BenchError):
        LotteryTicket(LTHHparams(rewind_epoch=3)).run(
            StubContext(build_model("resnet20", 10, width=0.25), density=0.5, epochs=2))


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_magnitude_trains_dense_prunes_once_then_fine_tunes(data, scope):
    model = build_model("resnet20", 10, seed=0, width=0.25)
    names = [name for name, _ in prunable_layers(model)]
    ctx = StubContext(model, density=0.1, epochs=4, data=data, fake_training=True)
    MagnitudeAfterTraining(MagnitudeHparams(scope=scope)).run(ctx)
    assert [(c["phase"], c["epochs"]) for c in ctx.calls] == [("dense", 2), ("finetune", 2)]
    dense, finetune = ctx.calls
    assert all(m.all() for m in dense["masks"].values())
    masks = finetune["masks"]
    if scope == "global":
        assert sum(int(m.sum()) for m in masks.values()) == kept_count(total_weights(model), 0.1)
        _assert_top_magnitudes(dense["masks"], dense["end"], masks, names)
    else:
        for name in names:
            assert int(masks[name].sum()) == kept_count(masks[name].numel(), 0.1)
            _assert_top_magnitudes(dense["masks"], dense["end"], masks, [name])
    for name in names:  # fine-tuning starts from the trained weights, not a rewind
        key = f"{name}.weight"
        assert torch.equal(finetune["start"][key][masks[name]], dense["end"][key][masks[name]])
    assert ctx.search.extra_epochs == 0


# ---------------------------------------------------------------------------- harness runs


def _spy_on_final_models(monkeypatch) -> dict[str, nn.Module]:
    """Capture the model each run hands to the harness's measurement, by method."""
    captured: dict[str, nn.Module] = {}
    real = harness_one_run.measure

    def spy(model, spec, *args, **kwargs):
        captured[spec.method] = model
        return real(model, spec, *args, **kwargs)

    monkeypatch.setattr(harness_one_run, "measure", spy)
    return captured


def _assert_masks_hold(model: nn.Module, kept: int) -> None:
    total = 0
    for _, layer in prunable_layers(model):
        mask = layer.current_mask()
        assert mask is not None
        assert (layer.weight[~mask] == 0).all()
        assert int((layer.weight != 0).sum()) == int(mask.sum())
        total += int(mask.sum())
    assert total == kept


def test_a_short_harness_run_keeps_its_masks(cifar10_dir, tmp_path, monkeypatch):
    captured = _spy_on_final_models(monkeypatch)
    code = main(["run", "--methods", "snip", "--preset", "smoke", "--width", "0.25",
                 "--train-subset", "200", "--test-subset", "100", "--densities", "0.1",
                 "--epochs", "1", "--device", "cpu", "--no-progress", "--eval-every", "0",
                 "--data-dir", str(cifar10_dir), "--results", str(tmp_path)])
    assert code == 0
    ((_, record),) = list(RunStore(tmp_path).records())
    assert record["status"] == "finished"
    metrics = record["metrics"]
    kept = kept_count(metrics["parameters_prunable"], 0.1)
    assert metrics["parameters_kept"] == kept
    _assert_masks_hold(captured["snip"], kept)
    assert [(p["phase"], p["epochs"]) for p in record["phases"]] == [("train", 1)]
    search = record["budget"]["search"]
    assert search["forward_images"] == search["backward_images"] == 100
    assert search["extra_epochs"] == 0


@pytest.mark.slow
def test_every_baseline_end_to_end_on_real_cifar10(cifar10_dir, tmp_path, monkeypatch):
    methods = ["random", "magnitude-init", "snip", "grasp", "synflow", "magnitude", "lth"]
    captured = _spy_on_final_models(monkeypatch)
    code = main(["run", "--methods", ",".join(methods), "--preset", "smoke", "--width", "0.25",
                 "--train-subset", "1000", "--test-subset", "500", "--densities", "0.5",
                 "--epochs", "2", "--device", "cpu", "--no-progress",
                 "--data-dir", str(cifar10_dir), "--results", str(tmp_path)])
    assert code == 0
    records = {r["spec"]["method"]: r for _, r in RunStore(tmp_path).records()}
    assert sorted(records) == sorted(methods)
    for method, record in records.items():
        assert record["status"] == "finished", (method, record.get("error"))
        metrics = record["metrics"]
        total = metrics["parameters_prunable"]
        assert abs(metrics["density"] * total - 0.5 * total) <= 1, method  # global: one weight
        assert metrics["parameters_kept"] == kept_count(total, 0.5), method
        artifact = Path(tmp_path) / record["key"] / metrics["artifact_file"]
        assert metrics["artifact_bytes"] == artifact.stat().st_size
        assert not metrics["layer_collapse"], method
        search = record["budget"]["search"]
        assert set(search) >= {"extra_epochs", "forward_images", "backward_images", "seconds"}
        _assert_masks_hold(captured[method], metrics["parameters_kept"])
        assert math.isfinite(metrics["test_accuracy"])
    phases = {m: [(p["phase"], p["epochs"]) for p in r["phases"]] for m, r in records.items()}
    for method in ("random", "magnitude-init", "snip", "grasp", "synflow"):
        assert phases[method] == [("train", 2)], method
        assert records[method]["budget"]["search"]["extra_epochs"] == 0
    assert phases["magnitude"] == [("dense", 1), ("finetune", 1)]
    assert phases["lth"] == [(f"round{r}", 2) for r in range(5)]
    assert records["lth"]["budget"]["search"]["extra_epochs"] == 2 * 4  # 4 pruning rounds
    assert records["lth"]["budget"]["all_phases_epochs"] == 10
    images = {m: records[m]["budget"]["search"]["forward_images"] for m in records}
    assert images["snip"] == 100 and images["grasp"] == 200 and images["synflow"] == 100
    assert images["random"] == images["magnitude-init"] == 0
