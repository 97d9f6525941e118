"""The field's other pruning-at-initialisation baselines: NTK-SAP, SynFlow-L2, iterative SNIP,
FORCE, ProsPr and random ERK, each against a hand computation on tiny networks (closed
forms, explicit chain rules, autograd on functional re-implementations in float64) and in
what it does over its rounds. What the authors' code computes on the suite's ResNet-20 is
checked in tests/test_conformance.py.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from test_baselines import (
    StubContext,
    TinyConvBN,
    assert_scores_close,
    masks_of,
    mlp_forward,
    mlp_grads,
    mlp_weights,
    pooled,
    synthetic_data,
    tiny_mlp,
    total_weights,
)

import baselines.ntk_sap as ntk_sap_module
from baselines.force import FORCE
from baselines.iter_snip import IterSNIP, IterSNIPHparams
from baselines.ntk_sap import NTKSAP, NTKSAPHparams, Twins, ntk_step, set_batch_statistics
from baselines.prospr import ProsPr, ProsPrHparams
from baselines.random_erk import RandomERK, RandomERKHparams, exact_counts
from baselines.synflow_l2 import SynFlowL2, squared_copy, synflow_l2_scores
from bench.counts import erk_densities, kept_count
from bench.metrics import model_metrics
from bench.models import build_model, prunable_layers
from bench.pruning import PRUNING_IMAGES_PER_CLASS, scoring_copy
from bench.registry import get_method

SIX = ("ntk-sap", "synflow-l2", "iter-snip", "force", "prospr", "random-erk")


@pytest.fixture(scope="module")
def data():
    return synthetic_data(300)


@pytest.fixture(scope="module")
def batch(data):
    return data.pruning_batch(PRUNING_IMAGES_PER_CLASS, 5)


def resnet(width: float = 0.25, seed: int = 0):
    return build_model("resnet20", 10, seed=seed, width=width)


def test_the_six_are_registered_with_the_authors_defaults():
    defaults = {name: get_method(name).Hparams() for name in SIX}
    assert (defaults["ntk-sap"].rounds, defaults["ntk-sap"].draws,
            defaults["ntk-sap"].epsilon, defaults["ntk-sap"].cut) == (20, 5, 0.01, "kthvalue")
    assert (defaults["synflow-l2"].rounds, defaults["synflow-l2"].cut) == (100, "kthvalue")
    assert not defaults["synflow-l2"].float64
    for name in ("iter-snip", "force"):
        hp = defaults[name]
        assert (hp.rounds, hp.cut, hp.loss, hp.data, hp.batch_size, hp.batches_per_step) == \
            (60, "keep-ties", "nll-logits", "training", 128, 1)
    hp = defaults["prospr"]
    assert (hp.steps, hp.lr, hp.momentum, hp.batch_size, hp.data, hp.cut, hp.float64) == \
        (3, 0.1, 0.0, 128, "training", "exact-ceil", False)
    assert defaults["random-erk"].draw == "bernoulli" and defaults["random-erk"].power == 1.0
    assert FORCE.revives and not IterSNIP.revives


# ---------------------------------------------------------------------------- SynFlow-L2


def synflow_l2_expected(net) -> dict[str, torch.Tensor]:
    """The tiny MLP on ones (ones after pooling): with S1 = (W1 M1)^2, S2 = (W2 M2)^2 every
    unit is positive and R = 1' S2 S1 1, so dR/dS1[j, i] = sum_k S2[k, j] and
    dR/dS2[k, j] = (S1 1)_j; the score is |W| times that (masked gradients are zero)."""
    w1, w2 = mlp_weights(net)
    m1 = net[2].mask.double() if net[2].mask is not None else torch.ones_like(w1)
    m2 = net[4].mask.double() if net[4].mask is not None else torch.ones_like(w2)
    s1, s2 = (w1 * m1) ** 2, (w2 * m2) ** 2
    return {"2": w1.abs() * m1 * s2.sum(0)[:, None], "4": w2.abs() * m2 * s1.sum(1)[None, :]}


@pytest.mark.parametrize("masked", [False, True])
def test_synflow_l2_score_is_abs_w_times_the_gradient_at_the_squares(masked):
    net = tiny_mlp()
    if masked:
        g = torch.Generator().manual_seed(3)
        net[2].set_mask(torch.rand(net[2].weight.shape, generator=g) < 0.5)
        net[4].set_mask(torch.rand(net[4].weight.shape, generator=g) < 0.7)
    scores = synflow_l2_scores(net, squared_copy(net))
    assert_scores_close(scores, synflow_l2_expected(net), rel=1e-5)
    chain = synflow_l2_expected(net)["2"] * 2 * mlp_weights(net)[0].abs()  # d/dw would be this
    assert not torch.allclose(scores["2"].double(), chain, rtol=0.1)


def test_synflow_l2_squares_every_tensor_and_uses_eval_mode():
    """BatchNorm affine and running statistics squared, normalised with the running ones."""
    net = TinyConvBN().train()
    wc, wf = (w.detach().double() for w in (net.conv.weight, net.fc.weight))
    sc, sf = (wc ** 2).requires_grad_(), (wf ** 2).requires_grad_()
    bn = net.bn
    out = F.conv2d(torch.ones(1, 3, 32, 32, dtype=torch.float64), sc, stride=4, padding=1)
    mean, var = (t.detach().double().view(1, 3, 1, 1) ** 2 for t in (bn.running_mean,
                                                                      bn.running_var))
    gamma, beta = (t.detach().double().view(1, 3, 1, 1) ** 2 for t in (bn.weight, bn.bias))
    out = torch.relu((out - mean) / torch.sqrt(var + bn.eps) * gamma + beta)
    r = (out.mean((2, 3)) @ sf.T).sum()
    gc, gf = torch.autograd.grad(r, (sc, sf))
    expected = {"conv": wc.abs() * gc, "fc": wf.abs() * gf}
    assert_scores_close(synflow_l2_scores(net, squared_copy(net)), expected, rel=1e-5)
    assert net.training and torch.equal(net.bn.running_var, torch.tensor([4.0, 0.25, 2.0]))


def test_synflow_l2_prunes_in_100_rounds_with_the_authors_cut(data):
    model = resnet()
    ctx = StubContext(model, density=0.1, data=data)
    SynFlowL2().run(ctx)
    assert ctx.search.forward_images == ctx.search.backward_images == 100
    total = total_weights(model)
    assert model_metrics(model)["parameters_kept"] == total - int(0.9 * total)  # kthvalue


# ---------------------------------------------------------------------------- NTK-SAP


def test_batch_statistics_come_from_the_input_alone_then_eval_mode():
    net = TinyConvBN()
    x = torch.randn(50, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    set_batch_statistics(net, x)
    with torch.no_grad():
        conv = net.conv(x).double()
    torch.testing.assert_close(net.bn.running_mean.double(), conv.mean((0, 2, 3)), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(net.bn.running_var.double(), conv.var((0, 2, 3)), rtol=1e-4,
                               atol=1e-6)  # unbiased
    assert not net.training


def test_an_ntk_sap_step_is_the_mask_gradient_of_the_twins_squared_distance():
    """J = sum ||f(x; W m) - f(x; W' m)||^2 with both networks in eval mode on x's batch
    statistics; dJ/dm at m = 1 on live weights, by autograd on a float64 re-implementation."""
    net = TinyConvBN()
    net.conv.set_mask(torch.rand(net.conv.weight.shape,
                                 generator=torch.Generator().manual_seed(1)) < 0.7)
    twin = scoring_copy(net)
    net = scoring_copy(net)
    twins = Twins(net, twin, torch.Generator().manual_seed(2))
    x = torch.randn(40, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    got = ntk_step(twins, x, epsilon=0.01)
    mc = net.conv.mask.double().requires_grad_()
    mf = torch.ones_like(net.fc.weight, dtype=torch.float64, requires_grad=True)
    mean, var = net.bn.running_mean.double(), net.bn.running_var.double()

    def logits(conv_w, fc_w):
        out = F.conv2d(x.double(), conv_w.detach().double() * mc, stride=4, padding=1)
        out = (out - mean.view(1, 3, 1, 1)) / torch.sqrt(var.view(1, 3, 1, 1) + net.bn.eps)
        out = torch.relu(out * net.bn.weight.detach().double().view(1, 3, 1, 1)
                         + net.bn.bias.detach().double().view(1, 3, 1, 1))
        return out.mean((2, 3)) @ (fc_w.detach().double() * mf).T

    j = ((logits(net.conv.weight, net.fc.weight)
          - logits(twin.conv.weight, twin.fc.weight)) ** 2).sum()
    gc, gf = torch.autograd.grad(j, (mc, mf))
    expected = {"conv": gc * net.conv.mask.double(), "fc": gf}  # pruned weights: no score
    assert_scores_close(got, expected, rel=1e-3)
    noise = (twin.fc.weight - net.fc.weight).detach() / 0.01
    assert 0.5 < float(noise.std()) < 1.5  # W' = W + epsilon N(0, 1)
    assert torch.equal(twin.bn.running_var, net.bn.running_var)


def test_ntk_sap_ignores_the_models_weights_and_follows_the_run_seed(data):
    def masks(seed: int, model_seed: int):
        model = resnet(seed=model_seed)
        ctx = StubContext(model, density=0.2, seed=seed, data=data)
        NTKSAP(NTKSAPHparams(rounds=2, draws=1)).prune_model(model, ctx)
        return masks_of(model), ctx.search

    first, search = masks(0, 0)
    assert all(torch.equal(first[n], m) for n, m in masks(0, 3)[0].items())  # weight-agnostic
    assert not all(torch.equal(first[n], m) for n, m in masks(1, 0)[0].items())
    assert (search.forward_images, search.backward_images) == (2 * 1 * 300, 2 * 1 * 200)


def test_ntk_sap_twin_carries_the_models_norm_affine_in_round_one_only(data, monkeypatch):
    """The authors copy the twin at the start of every round: round 1 has the model's own
    BatchNorm scale and shift, later rounds the 1 and 0 of the re-drawn network."""
    model = resnet()
    with torch.no_grad():
        model.bn.weight.fill_(2.0)
        model.bn.bias.fill_(0.5)
    seen = []
    real = ntk_sap_module.perturb

    def spy(net, twin, epsilon, generator):
        seen.append(tuple(float(t[0].detach()) for t in (twin.bn.weight, twin.bn.bias,
                                                         net.bn.weight)))
        real(net, twin, epsilon, generator)

    monkeypatch.setattr(ntk_sap_module, "perturb", spy)
    NTKSAP(NTKSAPHparams(rounds=2, draws=2)).prune_model(model, StubContext(model, data=data))
    assert seen == [(2.0, 0.5, 1.0)] * 2 + [(1.0, 0.0, 1.0)] * 2
    assert float(model.bn.weight[0].detach()) == 2.0  # the run's model is never touched


# ---------------------------------------------------------------------------- iterative SNIP


def nll_logit_grads(a, y, w1, w2):
    """dL/dW1, dL/dW2 for L = -mean of the true class's raw logit (FORCE's nll_loss)."""
    pre, h, _ = mlp_forward(a, w1, w2)
    dz = -F.one_hot(y, 10).double() / len(y)
    return ((dz @ w2) * (pre > 0)).T @ a, dz.T @ h


@pytest.mark.parametrize("loss", ["nll-logits", "cross-entropy"])
def test_iter_snip_score_with_the_authors_loss_or_cross_entropy(data, batch, loss):
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    x, y = batch
    grads = (nll_logit_grads(pooled(x), y, w1, w2) if loss == "nll-logits"
             else mlp_grads(pooled(x), y, w1, w2, mean=True))
    ctx = StubContext(net, data=data, seed=5)
    scores = IterSNIP(IterSNIPHparams(data="pruning-set", loss=loss)).importance(net, ctx)
    assert_scores_close(scores, {"2": (w1 * grads[0]).abs(), "4": (w2 * grads[1]).abs()})


def test_iter_snip_scores_each_step_on_fresh_training_batches(data, monkeypatch):
    import baselines.iter_snip as module

    seen = []
    real = module.mean_gradients

    def spy(net, batches, loss, ctx):
        seen.append([x.clone() for x, _ in batches])
        return real(net, batches, loss, ctx)

    monkeypatch.setattr(module, "mean_gradients", spy)
    model = resnet()
    ctx = StubContext(model, density=0.1, data=data)
    IterSNIP(IterSNIPHparams(rounds=4, batch_size=32, batches_per_step=2)).run(ctx)
    assert [len(s) for s in seen] == [2] * 4 and all(x.shape[0] == 32 for s in seen for x in s)
    flat = [x for s in seen for x in s]
    assert all(not torch.equal(a, b) for i, a in enumerate(flat) for b in flat[i + 1:])
    assert ctx.search.forward_images == ctx.search.backward_images == 4 * 2 * 32
    assert model_metrics(model)["parameters_kept"] == int(0.1 * total_weights(model))


def test_iter_snip_never_revives_and_force_does(data):
    outcomes = {}
    for cls in (IterSNIP, FORCE):
        model = resnet()
        initial = {n: layer.weight.detach().clone() for n, layer in prunable_layers(model)}
        history = []
        method = cls(IterSNIPHparams(rounds=6, data="pruning-set"))
        real = method.importance

        def spy(m, ctx, real=real, history=history):
            history.append(masks_of(m))
            return real(m, ctx)

        method.importance = spy
        method.prune_model(model, StubContext(model, density=0.05, data=data))
        final = masks_of(model)
        back = sum(int((final[n] & ~history[-1][n]).sum()) for n in final)
        back += sum(int((b[n] & ~a[n]).sum()) for a, b in zip(history, history[1:]) for n in a)
        outcomes[cls] = back
        for name, layer in prunable_layers(model):  # revived weights have their values back
            assert torch.equal(layer.weight.detach(), initial[name] * final[name])
    assert outcomes[IterSNIP] == 0 and outcomes[FORCE] > 0


def test_force_scores_w0_times_the_gradient_at_the_pruned_weights_too(data, batch):
    """With mask M the network computes with W0 * M and the gradient is not blocked: the
    score of a pruned weight is |w0 * dL/dW| at W = W0 * M."""
    net = tiny_mlp()
    g = torch.Generator().manual_seed(4)
    masks = {"2": torch.rand(net[2].weight.shape, generator=g) < 0.5,
             "4": torch.rand(net[4].weight.shape, generator=g) < 0.6}
    for name, mask in masks.items():
        net.get_submodule(name).set_mask(mask, revivable=True)  # as FORCE's rounds hold them
    w1, w2 = mlp_weights(net)
    x, y = batch
    g1, g2 = nll_logit_grads(pooled(x), y, w1 * masks["2"], w2 * masks["4"])
    scores = FORCE(IterSNIPHparams(data="pruning-set")).importance(net, StubContext(net,
                                                                                   data=data))
    assert_scores_close(scores, {"2": (w1 * g1).abs(), "4": (w2 * g2).abs()})
    assert (scores["2"][~masks["2"]] > 0).any()


# ---------------------------------------------------------------------------- ProsPr


def prospr_expected(net, x, y, steps, lr, momentum=0.0):
    """|dL(theta_M)/dm| for the tiny MLP in float64, theta_0 = theta * m, plain SGD."""
    w1, w2 = mlp_weights(net)
    m1 = torch.ones_like(w1, requires_grad=True)
    m2 = torch.ones_like(w2, requires_grad=True)
    a = pooled(x)
    t1, t2 = w1 * m1, w2 * m2
    v1 = v2 = None
    for _ in range(steps):
        g1, g2 = torch.autograd.grad(F.cross_entropy(mlp_forward(a, t1, t2)[2], y), (t1, t2),
                                     create_graph=True)
        if momentum:
            v1 = g1.detach() if v1 is None else v1 * momentum + g1
            v2 = g2.detach() if v2 is None else v2 * momentum + g2
            g1, g2 = v1, v2
        t1, t2 = t1 - lr * g1, t2 - lr * g2
    d1, d2 = torch.autograd.grad(F.cross_entropy(mlp_forward(a, t1, t2)[2], y), (m1, m2))
    return {"2": d1.abs(), "4": d2.abs()}


@pytest.mark.parametrize("steps, momentum", [(0, 0.0), (1, 0.0), (3, 0.0), (3, 0.9)])
def test_prospr_meta_gradient_through_the_unrolled_steps(data, batch, steps, momentum):
    net = tiny_mlp()
    x, y = batch
    ctx = StubContext(net, data=data, seed=5)
    hp = ProsPrHparams(steps=steps, momentum=momentum, data="pruning-set", float64=True)
    scores = ProsPr(hp).importance(net, ctx)
    assert_scores_close(scores, prospr_expected(net, x, y, steps, 0.1, momentum), rel=1e-9)
    assert (ctx.search.forward_images, ctx.search.backward_images) == \
        (100 * (steps + 1), 100 * (3 * steps + 1))


def test_prospr_at_zero_steps_is_snips_score_on_the_mean_loss(data, batch):
    net = tiny_mlp()
    w1, w2 = mlp_weights(net)
    g1, g2 = mlp_grads(pooled(batch[0]), batch[1], w1, w2, mean=True)
    scores = ProsPr(ProsPrHparams(steps=0, data="pruning-set")).importance(
        net, StubContext(net, data=data, seed=5))
    assert_scores_close(scores, {"2": (w1 * g1).abs(), "4": (w2 * g2).abs()})


def test_prospr_keeps_the_ceiling_count_on_one_fresh_training_batch(data):
    model = resnet()
    ctx = StubContext(model, density=0.1, data=data)
    ProsPr(ProsPrHparams(batch_size=64)).run(ctx)
    assert ctx.search.forward_images == 64 * 4
    assert model_metrics(model)["parameters_kept"] == math.ceil(0.1 * total_weights(model))


# ---------------------------------------------------------------------------- random ERK


def test_erk_densities_are_methods_md_figures_for_resnet20():
    model = build_model("resnet20", 10, seed=0)
    shapes = {n: tuple(layer.weight.shape) for n, layer in prunable_layers(model)}
    d = erk_densities(shapes, 0.05)
    figures = {"conv": 0.475, "blocks.0.conv1": 0.135, "blocks.4.conv1": 0.0623,
               "blocks.7.conv1": 0.0298, "blocks.3.conv1": 0.0961, "blocks.6.conv1": 0.0454,
               "blocks.3.shortcut.0": 0.801, "blocks.6.shortcut.0": 0.393, "fc": 0.949}
    for name, value in figures.items():
        assert d[name] == pytest.approx(value, abs=6e-4), name
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    assert sum(d[n] * sizes[n] for n in d) == pytest.approx(0.05 * sum(sizes.values()))
    assert d["blocks.1.conv2"] == d["blocks.0.conv1"]  # same shape, same density


def test_erk_makes_layers_dense_one_maximum_at_a_time():
    shapes = {"a": (4, 3, 1, 1), "b": (4, 3, 1, 1), "c": (64, 64, 3, 3), "d": (10, 512)}
    d = erk_densities(shapes, 0.05)
    # raw densities 10/12, 10/12, 134/36864, 522/5120: the first scale, 2100.4 / 676.1,
    # puts a and b at 2.6; both are made dense, and the scale solved again over c and d
    assert d["a"] == d["b"] == 1.0
    assert d["d"] == pytest.approx((0.05 * 41984 - 0.95 * 24) / (134 + 522) * 522 / 5120)
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    assert 0 < d["c"] < d["d"] < 1
    assert sum(d[n] * sizes[n] for n in d) == pytest.approx(0.05 * sum(sizes.values()))
    assert erk_densities(shapes, 1.0) == {n: 1.0 for n in shapes}


@pytest.mark.parametrize("draw", ["bernoulli", "exact-count"])
def test_random_erk_masks_have_erk_densities(draw):
    model = resnet(1.0)
    ctx = SimpleNamespace(seed=0, density=0.05)
    RandomERK(RandomERKHparams(draw=draw)).prune_model(model, ctx)
    shapes = {n: tuple(layer.weight.shape) for n, layer in prunable_layers(model)}
    d = erk_densities(shapes, 0.05)
    kept = {n: int(layer.mask.sum()) for n, layer in prunable_layers(model)}
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    for name in kept:
        sd = math.sqrt(sizes[name] * d[name] * (1 - d[name]))
        slack = 1 if draw == "exact-count" else 5 * sd + 1
        assert abs(kept[name] - d[name] * sizes[name]) <= slack, name
    if draw == "exact-count":
        assert sum(kept.values()) == kept_count(sum(sizes.values()), 0.05)
    again = resnet(1.0, seed=3)  # the seed of the run decides, not the weights
    RandomERK(RandomERKHparams(draw=draw)).prune_model(again, ctx)
    assert all(torch.equal(a.mask, b.mask) for (_, a), (_, b) in
               zip(prunable_layers(model), prunable_layers(again)))


def test_random_erk_bernoulli_counts_vary_like_binomials():
    """The authors' draw: per-weight Bernoulli, so a layer's count is Binomial(n, d_l)."""
    model = resnet(1.0)
    shapes = {n: tuple(layer.weight.shape) for n, layer in prunable_layers(model)}
    expected = erk_densities(shapes, 0.05)["blocks.7.conv1"] * 36864
    counts = []
    for seed in range(12):
        RandomERK().prune_model(model := resnet(1.0), SimpleNamespace(seed=seed, density=0.05))
        counts.append(int(model.blocks[7].conv1.mask.sum()))
    assert len(set(counts)) > 6  # random counts, unlike exact-count's
    mean = sum(counts) / len(counts)
    assert abs(mean - expected) < 4 * math.sqrt(expected / len(counts))


def test_exact_counts_hit_the_total_by_largest_remainders():
    # ideal 1.5, 0.75 and 2 of 4: floors 1, 0, 2 and the one left goes to b (0.75 > 0.5)
    assert exact_counts({"a": 0.5, "b": 0.25, "c": 1.0}, {"a": 3, "b": 3, "c": 2}, 4) == \
        {"a": 1, "b": 1, "c": 2}


@pytest.mark.parametrize("method", [
    NTKSAP(NTKSAPHparams(draws=1)), SynFlowL2(), IterSNIP(IterSNIPHparams(batch_size=16)),
    FORCE(IterSNIPHparams(batch_size=16)), ProsPr(ProsPrHparams(batch_size=16))],
    ids=lambda m: m.name)
def test_scoring_leaves_the_run_model_unchanged(data, method):
    model = resnet()
    g = torch.Generator().manual_seed(0)
    for _, layer in prunable_layers(model):
        layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.6)
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    scores = method.importance(model, StubContext(model, data=data))
    method.release_copies()
    assert set(scores) == {name for name, _ in prunable_layers(model)}
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores.values())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and not model.training
