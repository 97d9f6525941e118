"""PX (methods/px.py): scores checked against an explicit path enumeration, and what it does.

The tiny-MLP tests build the bound from the definitions, path by path: for every path
input i -> hidden j -> output k, the gate pattern of the live network, x_i^2 and the
product of the (squared) weights along it. They differentiate that bound with autograd
with respect to theta^2 and compare the result with the method's scores. The other tests
check: the auxiliary copies of each variant (BatchNorm, classifier, activations), that the
run's model is left untouched, every conv architecture, the ViT refusal, the search cost,
the faithful variant's vanishing path kernel, and the schedule at 2 % on ResNet-20.
With ``--slow``: both variants end to end through the CLI on real CIFAR-10.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bench.cli import main
from bench.context import SearchCost
from bench.errors import BenchError
from bench.metrics import model_metrics
from bench.models import PrunableLinear, build_model, prunable_layers
from bench.pruning import kept_count, prune
from bench.registry import get_method
from bench.store import RunStore
from methods.px import (
    CLEAN,
    FAITHFUL,
    PX,
    PX2024,
    RELEASE_2024,
    FixedGate,
    GateBank,
    PXClean,
    PXHparams,
    WindowAvgPool,
    auxiliary_copy,
    px_objective,
    px_scores,
    record_gates,
)

# ---------------------------------------------------------------------------- fixtures


class FakeData:
    """The part of DeviceData that pruning_batches uses: a fixed random pruning set."""

    def __init__(self, n: int = 20, shape: tuple[int, ...] = (3, 32, 32), seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, *shape, generator=g)
        self.y = torch.arange(n) % 10

    def pruning_batch(self, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x, self.y


def fake_ctx(n: int = 20, shape: tuple[int, ...] = (3, 32, 32)) -> SimpleNamespace:
    return SimpleNamespace(data=FakeData(n, shape), seed=0, search=SearchCost(),
                           device=torch.device("cpu"), notes={})


def random_masks(model: nn.Module, density: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    prune(model, lambda m: {n: torch.rand(layer.weight.shape, generator=g)
                            for n, layer in prunable_layers(m)}, density)


def fixed_weights(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


W1 = fixed_weights((3, 4), 1)
W2 = fixed_weights((2, 3), 2)
M1 = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.float32)
M2 = torch.tensor([[1, 0, 1], [1, 1, 1]], dtype=torch.float32)
X = fixed_weights((5, 4), 3)


class TinyNet(nn.Module):
    """Bias-free PrunableLinear(4 -> 3) -> ReLU -> PrunableLinear(3 -> 2), head named ``fc``."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = PrunableLinear(4, 3, bias=False)
        self.relu = nn.ReLU()
        self.fc = PrunableLinear(3, 2, bias=False)
        with torch.no_grad():
            self.hidden.weight.copy_(W1)
            self.fc.weight.copy_(W2)
        self.hidden.set_mask(M1)
        self.fc.set_mask(M2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.hidden(x)))


def enumerated_bound(x: torch.Tensor, signed_classifier: bool
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R and its leaves (theta_1^2, and theta_2^2 or the signed theta_2), path by path.

    z1[n, k] = sum over paths (i, j, k) of mask(path) * gate(n, j) * x[n, i]^2 (weights 1);
    z2[k]    = sum over paths of mask(path) * theta_1[j, i]^2 * theta_2[k, j]^2
    (with ``signed_classifier`` the head enters both sums with its signed weight, as in the
    authors' code). R = sum over n and k of z1 * z2, on float64 leaves.
    """
    x = x.double()
    w1, w2 = (W1 * M1).double(), (W2 * M2).double()
    gate = (x @ w1.T) > 0  # the live network's hidden pre-activations, per sample
    v1 = w1.square().requires_grad_(True)
    v2 = (w2.clone() if signed_classifier else w2.square()).requires_grad_(True)
    n_samples, n_out, n_hidden, n_in = len(x), 2, 3, 4
    z1 = torch.zeros(n_samples, n_out, dtype=torch.float64)
    z2 = torch.zeros(n_out, dtype=torch.float64)
    for i, j, k in itertools.product(range(n_in), range(n_hidden), range(n_out)):
        alive = M1[j, i] * M2[k, j]
        if alive == 0:
            continue
        head = w2[k, j] if signed_classifier else 1.0  # copy 2: weights 1 unless signed
        for n in range(n_samples):
            z1[n, k] += float(gate[n, j]) * x[n, i] ** 2 * head
        z2[k] = z2[k] + v1[j, i] * v2[k, j]
    return (z1 * z2).sum(), v1, v2


def test_clean_scores_equal_the_derivative_of_the_enumerated_path_bound():
    model = TinyNet()
    pattern = model.hidden(X) > 0
    assert pattern.any() and not pattern.all()  # the gates matter
    scores = px_scores(model, [X[:3], X[3:]], CLEAN)  # two batches: R sums over both
    r, v1, v2 = enumerated_bound(X, signed_classifier=False)
    r.backward()
    expected = {"hidden": v1.grad.abs() * v1.detach(), "fc": v2.grad.abs() * v2.detach()}
    assert scores.keys() == expected.keys()
    for name, want in expected.items():
        torch.testing.assert_close(scores[name].double(), want, rtol=1e-10, atol=1e-12)
    assert (scores["hidden"][M1 == 0] == 0).all() and (scores["fc"][M2 == 0] == 0).all()
    assert (scores["hidden"][M1 == 1] > 0).any()


def test_faithful_scores_keep_the_classifier_signed_as_the_authors_code():
    model = TinyNet()
    scores = px_scores(model, [X], FAITHFUL)
    r, v1, theta2 = enumerated_bound(X, signed_classifier=True)
    r.backward()
    torch.testing.assert_close(scores["hidden"].double(), v1.grad.abs() * v1.detach(),
                               rtol=1e-5, atol=1e-7)
    # the head's gradient is with respect to its signed weight, then times theta^2
    torch.testing.assert_close(scores["fc"].double(), theta2.grad.abs() * theta2.detach() ** 2,
                               rtol=1e-5, atol=1e-7)


def enumerated_bound_2024(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2024 release's R on TinyNet, path by path: both copies see the images.

    z1[n, k] = sum over live paths of gate(n, j) * theta_1[j, i] * theta_2[k, j] * x[n, i]
    (copy 2 keeps the signed weights: the release's fill is a no-op);
    z2[n, k] = sum over live paths of theta_1[j, i]^2 * theta_2[k, j]^2 * x[n, i];
    R = sum over n and k of z1 * z2.
    """
    x = x.double()
    w1, w2 = (W1 * M1).double(), (W2 * M2).double()
    gate = (x @ w1.T) > 0
    v1 = w1.square().requires_grad_(True)
    v2 = w2.square().requires_grad_(True)
    z1 = torch.zeros(len(x), 2, dtype=torch.float64)
    z2 = torch.zeros(len(x), 2, dtype=torch.float64)
    for i, j, k in itertools.product(range(4), range(3), range(2)):
        if M1[j, i] * M2[k, j] == 0:
            continue
        for n in range(len(x)):
            z1[n, k] += float(gate[n, j]) * w1[j, i] * w2[k, j] * x[n, i]
            z2[n, k] = z2[n, k] + v1[j, i] * v2[k, j] * x[n, i]
    return (z1 * z2).sum(), v1, v2


def test_2024_release_scores_are_theta5_times_the_derivative_of_its_bound():
    model = TinyNet()
    scores = px_scores(model, [X[:2], X[2:]], dataclasses.replace(RELEASE_2024,
                                                                 dtype=torch.float64))
    r, v1, v2 = enumerated_bound_2024(X)
    r.backward()
    for name, v in (("hidden", v1), ("fc", v2)):
        theta = v.detach().sqrt()  # |theta|
        torch.testing.assert_close(scores[name].double(), v.grad.abs() * theta ** 5,
                                   rtol=1e-10, atol=1e-12)
    assert (scores["hidden"][M1 == 0] == 0).all() and (scores["fc"][M2 == 0] == 0).all()


def test_auxiliary_copies_of_the_2024_release():
    """Copy 2 keeps everything as it is; copy 3 squares all but the named BNs."""
    model = build_model("resnet20", 10, seed=0, width=0.25)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.weight.fill_(1.5)
                m.bias.fill_(-0.5)
    act = auxiliary_copy(model, RELEASE_2024, "activation", GateBank())
    ker = auxiliary_copy(model, RELEASE_2024, "kernel")
    fc = model.fc
    assert torch.equal(act.fc.weight, fc.weight) and torch.equal(act.fc.bias, fc.bias)
    assert torch.equal(act.conv.weight, model.conv.weight)
    assert torch.equal(ker.fc.weight, fc.weight.square()) and torch.equal(ker.fc.bias,
                                                                          fc.bias.square())
    assert (act.blocks[3].shortcut[1].weight == 1.5).all()  # BN untouched in copy 2
    assert (ker.blocks[3].shortcut[1].weight == 2.25).all()  # squared in copy 3 ("bn" lacks)
    assert (ker.blocks[3].bn1.weight == 1.5).all()  # named BN untouched
    assert act.training and ker.training
    assert isinstance(act.pool, WindowAvgPool) and isinstance(ker.pool, WindowAvgPool)


def test_window_pooling_is_the_global_mean():
    x = torch.randn(3, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(WindowAvgPool()(x), nn.AdaptiveAvgPool2d(1)(x))
    model = build_model("resnet20", 10, seed=0, width=0.25)
    assert isinstance(auxiliary_copy(model, FAITHFUL, "kernel").pool, WindowAvgPool)
    assert isinstance(auxiliary_copy(model, CLEAN, "kernel").pool, nn.AdaptiveAvgPool2d)


def test_faithful_objective_vanishes_in_float64_where_float32_leaves_residue():
    """The check a degenerate round records: R in the run's dtype and in float64."""
    model = build_model("resnet20", 10, seed=0, width=0.25)
    ctx = fake_ctx(10, shape=(3, 16, 16))
    found = PX().explain_degenerate(model, ctx)
    assert set(found) == {"objective", "objective_float64"}
    wide = px_objective(model, [ctx.data.x], dataclasses.replace(FAITHFUL, dtype=torch.float64))
    assert found["objective_float64"] == wide
    assert abs(wide) < 1e-6 * abs(px_objective(model, [ctx.data.x], RELEASE_2024))


def test_gates_are_the_live_networks_pre_activation_signs_and_hooks_go_away():
    model = TinyNet()
    gates = record_gates(model, X)
    assert list(gates) == ["relu"] and len(gates["relu"]) == 1
    assert torch.equal(gates["relu"][0], model.hidden(X) > 0)
    assert all(not m._forward_hooks for m in model.modules())


# ---------------------------------------------------------------------------- the copies


def test_auxiliary_copies_of_the_faithful_variant():
    model = build_model("resnet20", 10, seed=0, width=0.25)
    bank = GateBank()
    act = auxiliary_copy(model, FAITHFUL, "activation", bank)
    ker = auxiliary_copy(model, FAITHFUL, "kernel")
    for net in (act, ker):
        assert net.training  # BatchNorm on batch statistics
        assert sum(isinstance(m, _BatchNorm) for m in net.modules()) == sum(
            isinstance(m, _BatchNorm) for m in model.modules())
        assert torch.equal(net.fc.weight, model.fc.weight)  # classifier left signed
        assert torch.equal(net.blocks[3].bn1.bias, model.blocks[3].bn1.bias)  # named "bn"
    # the shortcut BN's name lacks "bn": its affine params are 1 in copy 2, squared in copy 3
    assert (act.blocks[3].shortcut[1].bias == 1).all()
    assert (act.blocks[3].shortcut[1].weight == 1).all()
    assert torch.equal(ker.blocks[3].shortcut[1].bias, model.blocks[3].shortcut[1].bias ** 2)
    assert (act.conv.weight == 1).all()
    torch.testing.assert_close(ker.conv.weight, model.conv.weight ** 2)
    assert isinstance(act.relu, FixedGate) and isinstance(act.blocks[0].relu2, FixedGate)
    assert isinstance(ker.relu, nn.Identity) and isinstance(ker.blocks[0].relu2, nn.Identity)
    assert [n for n, p in ker.named_parameters() if p.requires_grad] == [
        f"{n}.weight" for n, _ in prunable_layers(ker)]


def test_auxiliary_copies_of_the_clean_variant():
    model = build_model("vgg16", 10, seed=0, width=0.125)
    random_masks(model, 0.5)
    act = auxiliary_copy(model, CLEAN, "activation", GateBank())
    ker = auxiliary_copy(model, CLEAN, "kernel")
    for net in (act, ker):
        assert not any(isinstance(m, _BatchNorm) for m in net.modules())  # BN as identity
        assert all(p.dtype == torch.float64 for p in net.parameters())
    for (name, layer), (_, a), (_, k) in zip(prunable_layers(model), prunable_layers(act),
                                             prunable_layers(ker)):
        mask = layer.mask.double()
        # every prunable layer alike, classifier included: the forward uses weight * mask
        assert torch.equal(a.effective_weight(), mask), name
        torch.testing.assert_close(k.effective_weight(), layer.weight.double() ** 2 * mask)
        if layer.bias is not None:  # biases: edges from a constant unit
            assert (a.bias == 1).all() and torch.equal(k.bias, layer.bias.double() ** 2)
    assert isinstance(ker.layers[0].relu, nn.Identity)
    assert isinstance(ker.layers[2], nn.MaxPool2d) and isinstance(act.layers[2], nn.MaxPool2d)


def test_convmixer_gelus_are_gated_like_relus():
    model = build_model("convmixer-32-2", 10, seed=0)
    x = torch.randn(4, 3, 32, 32)
    gates = record_gates(copy.deepcopy(model).eval(), x)
    pre = model.eval().stem(x)
    assert torch.equal(gates["stem_act"][0], pre > 0)
    act = auxiliary_copy(model, CLEAN, "activation", GateBank())
    ker = auxiliary_copy(model, CLEAN, "kernel")
    assert isinstance(act.blocks[0].act1, FixedGate) and isinstance(ker.blocks[0].act1, nn.Identity)


# ---------------------------------------------------------------------------- the run's model


def _hooks(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]


@pytest.mark.parametrize("method", [PX, PXClean])
@pytest.mark.parametrize("training", [True, False])
def test_scoring_leaves_the_model_untouched(method, training):
    model = build_model("resnet20", 10, seed=0, width=0.25)
    random_masks(model, 0.5)
    model.train(training)
    x = torch.randn(6, 3, 16, 16)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def outputs() -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():  # on copies: a train-mode forward would move BN statistics
            return copy.deepcopy(model).train()(x), copy.deepcopy(model).eval()(x)

    before = outputs()
    relu = torch.nn.functional.relu
    scores = method().importance(model, fake_ctx(10, shape=(3, 16, 16)))
    after = outputs()
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert _hooks(model) == []
    assert all(p.grad is None for p in model.parameters())
    assert torch.nn.functional.relu is relu  # nothing patched
    assert set(scores) == {n for n, _ in prunable_layers(model)}


# ---------------------------------------------------------------------------- architectures


@pytest.mark.parametrize("method", [PX, PXClean])
@pytest.mark.parametrize("name,kwargs", [
    ("resnet20", {"width": 0.25}),
    ("vgg16", {"width": 0.125}),
    ("convmixer-32-2", {}),
])
def test_both_variants_score_every_conv_architecture(method, name, kwargs):
    model = build_model(name, 10, seed=0, **kwargs)
    random_masks(model, 0.6)
    layers = dict(prunable_layers(model))
    before = {n: layer.mask.clone() for n, layer in layers.items()}
    ctx = fake_ctx(8)
    prune(model, lambda m: method().importance(m, ctx), 0.3)
    assert all((layer.mask <= before[n]).all() for n, layer in layers.items())  # stay pruned
    scores = method().importance(model, ctx)
    assert set(scores) == set(layers)
    for layer_name, score in scores.items():
        assert score.shape == layers[layer_name].weight.shape
        assert torch.isfinite(score).all() and (score >= 0).all(), layer_name
        assert (score[layers[layer_name].mask == 0] == 0).all()  # pruned weights score 0
    total = sum(layer.weight.numel() for layer in layers.values())
    assert model_metrics(model)["parameters_kept"] == kept_count(total, 0.3)


@pytest.mark.parametrize("method", [PX, PXClean])
def test_vit_is_refused_with_a_one_line_error(method):
    model = build_model("vit-32-1", 10, seed=0)
    with pytest.raises(BenchError, match=r"^px is defined for ReLU-gated conv nets "
                                         r"\(ResNet, VGG, ConvMixer\); ViT has attention") as err:
        method().importance(model, fake_ctx(4))
    assert "\n" not in str(err.value)


def test_other_unsupported_modules_are_refused():
    model = nn.Sequential(PrunableLinear(4, 3), nn.Tanh(), PrunableLinear(3, 2))
    with pytest.raises(BenchError, match=r"px cannot score 1 \(Tanh\)"):
        px_scores(model, [X], CLEAN)


# ---------------------------------------------------------------------------- plugin, cost


def test_three_variants_are_registered_with_100_rounds_and_their_cuts():
    assert (get_method("px"), get_method("px-2024"), get_method("px-clean")) == (
        PX, PX2024, PXClean)
    assert PX.Hparams is PXHparams and PX2024.Hparams is PXHparams
    assert PXHparams().rounds == 100 and PXHparams().scope == "global"
    assert PXHparams().cut == "kthvalue"  # the authors' cut, as their code prunes
    assert PXClean.Hparams().rounds == 100 and PXClean.Hparams().cut == "exact"
    assert PX.description and PX2024.description and PXClean.description
    assert PX.version == 2 and PXClean.version == 1


def test_search_cost_counts_every_pass():
    model = build_model("resnet20", 10, seed=0, width=0.25)
    ctx = fake_ctx(12, shape=(3, 16, 16))
    PX().importance(model, ctx)  # gate + copy 2 forward; copy 3 forward and backward per batch
    assert (ctx.search.forward_images, ctx.search.backward_images) == (36, 12)
    ctx = fake_ctx(12, shape=(3, 16, 16))
    PXClean().importance(model, ctx)  # copy 3 once, on one image
    assert (ctx.search.forward_images, ctx.search.backward_images) == (25, 1)


def test_faithful_path_kernel_vanishes_on_batchnorm_nets():
    """A property of the authors' code, kept by ``px``: its objective is zero but for rounding.

    In train mode, BatchNorm on identical all-ones samples gives every channel a spatial mean
    of beta = 0. The features reaching the global average pool are sums of BN outputs, so
    the pooled features, and with them z2 = fc(pooled), are 0 in exact arithmetic.
    """
    model = build_model("resnet20", 10, seed=0, width=0.25)
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-13)):
        kernel = auxiliary_copy(model, dataclasses.replace(FAITHFUL, dtype=dtype), "kernel")
        z2 = kernel(torch.ones(4, 3, 32, 32, dtype=dtype))
        assert z2.abs().max() < tol
    clean = auxiliary_copy(model, CLEAN, "kernel")(torch.ones(1, 3, 32, 32, dtype=torch.float64))
    assert (clean > 1).all()  # the paper's path kernel: positive sums of squared-weight paths


# ---------------------------------------------------------------------------- the schedule


def test_clean_variant_at_2_percent_keeps_resnet20_connected():
    """100 rounds to 2 % through the plugin's own run (exponential schedule, global threshold).

    Known behaviour, not a bug: px-clean empties whole residual branches of the last stage.
    Its path kernel uses squared weights: a Kaiming conv with a fraction d of its weights kept
    has a gain of about 2 d on squared-weight path sums. A two-conv branch at d = 0.02 carries
    about (2 d)^2 = 0.0016 of the flow of the identity shortcut next to it, so its weights
    score lowest and go. (SynFlow's |theta| gain is sqrt(fan_in) larger per layer, which keeps
    the branch.) What must hold is that the network stays connected: the stem, every shortcut
    conv and the classifier keep weights, and only residual-branch convs may be empty.
    """
    model = build_model("resnet20", 10, seed=0, width=0.5)
    ctx = fake_ctx(10, shape=(3, 16, 16))
    trained = []
    run_ctx = SimpleNamespace(**vars(ctx), model=model, density=0.02,
                              train=lambda: trained.append(True))
    PXClean().run(run_ctx)
    assert trained == [True]
    assert ctx.search.backward_images == 100  # one single-image backward per round
    metrics = model_metrics(model)
    assert metrics["parameters_kept"] == kept_count(metrics["parameters_prunable"], 0.02)
    per_tensor = metrics["density_per_tensor"]
    assert per_tensor["conv.weight"] > 0 and per_tensor["fc.weight"] > 0
    assert all(d > 0 for name, d in per_tensor.items() if ".shortcut." in name)
    branch = {f"blocks.{i}.conv{j}.weight" for i in range(9) for j in (1, 2)}
    assert set(metrics["collapsed_tensors"]) <= branch
    assert all(per_tensor[f"blocks.{i}.conv{j}.weight"] > 0 for i in range(3) for j in (1, 2))


# ---------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_both_variants_end_to_end_on_real_cifar10(cifar10_dir, tmp_path):
    code = main(["run", "--methods", "px,px-clean", "--preset", "smoke", "--width", "0.25",
                 "--train-subset", "1000", "--test-subset", "500", "--densities", "0.5",
                 "--epochs", "1", "--device", "cpu", "--no-progress",
                 "--data-dir", str(cifar10_dir), "--results", str(tmp_path)])
    assert code == 0
    records = {r["spec"]["method"]: r for _, r in RunStore(Path(tmp_path)).records()}
    assert sorted(records) == ["px", "px-clean"]
    for method, record in records.items():
        assert record["status"] == "finished", (method, record.get("error"))
        metrics = record["metrics"]
        target = kept_count(metrics["parameters_prunable"], 0.5)
        if method == "px-clean":  # the suite's cut: exactly round(d n)
            assert metrics["parameters_kept"] == target
        else:
            # The authors' kthvalue cut prunes every score tied with the cut, and px's float32
            # scores are rounding (its objective vanishes on BN nets): how many tie depends
            # on the CPU. AVX-512 without AMX: 8438 of 8566 kept; AVX-512/AMX: 8566.
            assert 0.9 * target <= metrics["parameters_kept"] <= target
        emptied = sorted(n for n, d in metrics["density_per_tensor"].items() if d == 0)
        assert sorted(metrics["collapsed_tensors"]) == emptied
        assert metrics["layer_collapse"] == bool(emptied)
        if method == "px-clean":
            assert not emptied
        # px's float32 scores here are rounding: with 2 threads on an AVX2 EPYC (CI) the
        # authors' cut empties both 1x1 downsampling shortcuts (blocks.3 and blocks.6), with
        # 1 thread nothing; the record must say so either way.
        search = record["budget"]["search"]
        assert search["forward_images"] > 0 and search["backward_images"] > 0
        assert [(p["phase"], p["epochs"]) for p in record["phases"]] == [("train", 1)]
    assert records["px"]["budget"]["search"]["backward_images"] == 100 * 100  # 100 rounds
    assert records["px-clean"]["budget"]["search"]["backward_images"] == 100
