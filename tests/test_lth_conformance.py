"""LTH / IMP against facebookresearch/open_lth, in exact arithmetic on small networks.

The reference below is open_lth's ``pruning/sparse_global.py`` ``Strategy.prune``
re-implemented here in numpy from its description (masks as 0/1 integer arrays, as open_lth
stores them): ``n = ceil(p * remaining)`` over every masked tensor, the threshold is the
sorted surviving magnitude of the pruned tensors at index ``n``, survivors are strictly
above it. What these tests pin down: which tensors are prunable (open_lth's
``models/base.py`` rule: every Conv2d and Linear weight, classifier included for CIFAR
ResNets), the count per round (suite default and ``count=open-lth``), an ignored classifier
(``prune_classifier=False``, open_lth's ``pruning_layers_to_ignore``), rewinding (every
survivor, bias, BatchNorm parameter and buffer back to the snapshot; pruned weights zero;
masks never revive), and, through the real engine, a fresh optimiser per round and the
learning-rate schedule each ``retrain`` mode gives.
"""

from __future__ import annotations

import math
from dataclasses import fields
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import bench.engine.loop as engine  # where train() looks make_optimizer up
from baselines.lth import (
    LotteryTicket,
    LTHHparams,
    classifier_name,
    open_lth_masks,
    resumed_recipe,
    round_densities,
)
from bench.context import RunContext, SearchCost
from bench.data import DATASETS, DeviceData
from bench.engine import EngineOptions, state_snapshot
from bench.errors import BenchError
from bench.models import PrunableConv2d, PrunableLinear, build_model, prunable_layers
from bench.pruning import kept_count
from bench.recipe import Recipe, lr_factor
from bench.registry import non_default_hparams
from bench.store import RunSpec, RunStore

# ---------------------------------------------------------------------------- the reference


def sparse_global_prune(weights: dict[str, np.ndarray], current_mask: dict[str, np.ndarray],
                        fraction: float, layers_to_ignore: tuple[str, ...] = ()
                        ) -> dict[str, np.ndarray]:
    """open_lth ``sparse_global.Strategy.prune`` (keys are ``<module>.weight``)."""
    remaining = np.sum([np.sum(v) for v in current_mask.values()])
    to_prune = np.ceil(fraction * remaining).astype(int)
    prunable = set(weights) - set(layers_to_ignore)
    w = {k: v for k, v in weights.items() if k in prunable}
    vector = np.concatenate([v[current_mask[k] == 1] for k, v in w.items()])
    threshold = np.sort(np.abs(vector))[to_prune]
    new = {k: np.where(np.abs(v) > threshold, current_mask[k], np.zeros_like(current_mask[k]))
           for k, v in w.items()}
    for k in current_mask:
        if k not in new:
            new[k] = current_mask[k]
    return new


def open_lth_prunable_names(model: nn.Module) -> list[str]:
    """open_lth ``models/base.py`` ``prunable_layer_names``: every Conv2d and Linear weight."""
    return [f"{name}.weight" for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def open_lth_remaining(total: int, rounds: int, fraction: float = 0.2) -> list[int]:
    """Weights left after each open_lth level without ties: n - ceil(p n) - 1."""
    out, n = [], total
    for _ in range(rounds):
        n = n - math.ceil(fraction * n) - 1
        out.append(n)
    return out


# ---------------------------------------------------------------------------- fixtures


def tiny_net(seed: int = 0) -> nn.Sequential:
    """conv(3->6, bias) -> BN -> ReLU -> conv(6->8) -> BN -> ReLU -> pool -> fc(8->10)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        PrunableConv2d(3, 6, 3, padding=1, bias=True), nn.BatchNorm2d(6), nn.ReLU(),
        PrunableConv2d(6, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), PrunableLinear(8, 10))


def synthetic_data(n: int = 100, seed: int = 0) -> DeviceData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    return DeviceData(DATASETS["cifar10"], x, y, x[: n // 5], y[: n // 5])


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, layer in prunable_layers(model):
        mask = layer.current_mask()
        out[name] = (torch.ones_like(layer.weight, dtype=torch.bool) if mask is None
                     else mask.clone())
    return out


class FakeTraining:
    """A RunContext stand-in whose ``train`` moves every parameter and BatchNorm buffer by
    seeded noise each epoch (pruned weights stay zero) and records each phase."""

    def __init__(self, model, *, density, epochs=3, recipe=None):
        self.model = model
        self.density = density
        self.seed = 0
        self.recipe = recipe or Recipe(epochs=epochs, batch_size=10, lr=0.1)
        self.search = SearchCost()
        self.calls: list[dict] = []

    def train(self, model=None, *, params=None, recipe=None, phase="train", final=None,
              snapshot_epochs=(), share=False):  # LTH asks to share every round
        model = self.model if model is None else model
        recipe = recipe or self.recipe
        call = {"phase": phase, "recipe": recipe, "masks": masks_of(model),
                "start": state_snapshot(model), "snapshots": {}}
        self.calls.append(call)
        if 0 in snapshot_epochs:
            call["snapshots"][0] = state_snapshot(model)
        g = torch.Generator().manual_seed(len(self.calls))
        with torch.no_grad():
            for epoch in range(1, recipe.epochs + 1):
                for p in model.parameters():
                    p.add_(0.05 * torch.randn(p.shape, generator=g))
                for m in model.modules():
                    if isinstance(m, nn.BatchNorm2d):
                        m.running_mean.add_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                        m.running_var.mul_(1.0 + 0.1 * torch.rand(m.running_var.shape,
                                                                  generator=g))
                        m.num_batches_tracked.add_(7)
                for _, layer in prunable_layers(model):
                    if layer.mask is not None:
                        layer.weight.mul_(layer.mask)
                if epoch in snapshot_epochs:
                    call["snapshots"][epoch] = state_snapshot(model)
        call["end"] = state_snapshot(model)
        return SimpleNamespace(snapshots=call["snapshots"], epochs=recipe.epochs, steps=0,
                               seconds=0.0, log=[])


def as_open_lth(model_state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]):
    """(weights, masks) keyed by ``<module>.weight``, as numpy (masks int32, as saved)."""
    weights = {f"{n}.weight": model_state[f"{n}.weight"].numpy() for n in masks}
    return weights, {f"{n}.weight": m.numpy().astype(np.int32) for n, m in masks.items()}


def total_prunable(model: nn.Module) -> int:
    return sum(layer.weight.numel() for _, layer in prunable_layers(model))


# ---------------------------------------------------------------------------- prunable tensors


@pytest.mark.parametrize("name, kwargs", [("resnet20", {"width": 0.25}),
                                          ("resnet20", {"width": 0.25, "shortcut": "A"}),
                                          ("vgg16", {"width": 0.125})])
def test_prunable_tensors_are_open_lths_conv_and_linear_weights(name, kwargs):
    model = build_model(name, 10, seed=0, **kwargs)
    suite = [f"{n}.weight" for n, _ in prunable_layers(model)]
    assert suite == open_lth_prunable_names(model)
    assert suite[0] == "conv.weight" or suite[0].startswith("layers.0")  # the stem conv
    assert suite[-1] == "fc.weight" and classifier_name(model) == "fc"
    if name == "resnet20" and kwargs.get("shortcut", "B") == "B":
        assert any(".shortcut.0.weight" in s for s in suite)  # 1x1 shortcut convs


def test_only_conv_and_linear_weights_are_ever_masked():
    model = build_model("resnet20", 10, seed=0, width=0.25)
    ctx = FakeTraining(model, density=0.6, epochs=2)
    LotteryTicket().run(ctx)
    masked = {k.removesuffix(".mask") for k in model.state_dict() if k.endswith(".mask")}
    assert masked == {n for n, _ in prunable_layers(model)}
    for module in model.modules():  # biases, BatchNorm: no masks, nothing zeroed by pruning
        if isinstance(module, nn.BatchNorm2d):
            assert getattr(module, "mask", None) is None
            assert bool((module.weight != 0).all())
    assert bool((model.fc.bias != 0).all())


# ---------------------------------------------------------------------------- counts per round


def test_default_count_keeps_round_of_the_schedule_every_round():
    model = tiny_net()
    total = total_prunable(model)
    ctx = FakeTraining(model, density=0.3)
    LotteryTicket().run(ctx)
    densities = round_densities(0.3, 0.2)
    assert len(ctx.calls) == len(densities) + 1 == 7
    for call, density in zip(ctx.calls[1:], densities):
        assert sum(int(m.sum()) for m in call["masks"].values()) == kept_count(total, density)


def test_open_lth_count_is_sparse_global_each_round_and_lands_on_the_target():
    model = tiny_net()
    total = total_prunable(model)
    ctx = FakeTraining(model, density=0.3)
    LotteryTicket(LTHHparams(count="open-lth")).run(ctx)
    rounds = len(round_densities(0.3, 0.2))
    expected = open_lth_remaining(total, rounds - 1)
    for r in range(1, rounds):
        previous, call = ctx.calls[r - 1], ctx.calls[r]
        weights, mask = as_open_lth(previous["end"], previous["masks"])
        reference = sparse_global_prune(weights, mask, 0.2)
        for name, m in call["masks"].items():
            assert np.array_equal(m.numpy().astype(np.int32), reference[f"{name}.weight"])
        assert sum(int(m.sum()) for m in call["masks"].values()) == expected[r - 1]
    final = ctx.calls[-1]["masks"]
    assert sum(int(m.sum()) for m in final.values()) == kept_count(total, 0.3)


def test_open_lth_rule_prunes_every_weight_tied_with_the_threshold():
    model = tiny_net()
    with torch.no_grad():  # magnitudes on a coarse grid: many ties everywhere
        for _, layer in prunable_layers(model):
            layer.weight.copy_((layer.weight * 4).round() / 4)
    masks = open_lth_masks(model, 0.2)
    weights, ones = as_open_lth(state_snapshot(model), masks_of(model))
    reference = sparse_global_prune(weights, ones, 0.2)
    for name, m in masks.items():
        assert np.array_equal(m.numpy().astype(np.int32), reference[f"{name}.weight"])
    pruned = total_prunable(model) - sum(int(m.sum()) for m in masks.values())
    assert pruned > math.ceil(0.2 * total_prunable(model)) + 1  # the ties went too


@pytest.mark.parametrize("count", ["nearest", "open-lth"])
def test_an_ignored_classifier_stays_dense_and_counts_in_the_density(count):
    model = tiny_net()
    total = total_prunable(model)
    fc = classifier_name(model)
    ctx = FakeTraining(model, density=0.4)
    LotteryTicket(LTHHparams(prune_classifier=False, count=count)).run(ctx)
    densities = round_densities(0.4, 0.2)
    for r, call in enumerate(ctx.calls[1:], 1):
        masks = call["masks"]
        assert bool(masks[fc].all())
        kept = sum(int(m.sum()) for m in masks.values())
        if count == "nearest" or r == len(densities):
            assert kept == kept_count(total, densities[r - 1])
        else:  # open_lth with pruning_layers_to_ignore='<fc>.weight'
            previous = ctx.calls[r - 1]
            weights, mask = as_open_lth(previous["end"], previous["masks"])
            reference = sparse_global_prune(weights, mask, 0.2, (f"{fc}.weight",))
            for name, m in masks.items():
                assert np.array_equal(m.numpy().astype(np.int32), reference[f"{name}.weight"])
    with pytest.raises(BenchError, match="classifier"):
        LotteryTicket(LTHHparams(prune_classifier=False)).run(
            FakeTraining(tiny_net(), density=0.01))


# ---------------------------------------------------------------------------- rewinding


@pytest.mark.parametrize("count", ["nearest", "open-lth"])
@pytest.mark.parametrize("rewind_epoch", [0, 1, 2])
def test_rewinding_restores_the_snapshot_and_masks_never_revive(count, rewind_epoch):
    model = tiny_net()
    init = state_snapshot(model)
    ctx = FakeTraining(model, density=0.5)
    LotteryTicket(LTHHparams(rewind_epoch=rewind_epoch, count=count)).run(ctx)
    snapshot = ctx.calls[0]["snapshots"][rewind_epoch]
    if rewind_epoch == 0:
        assert all(torch.equal(v, init[k]) for k, v in snapshot.items())
    for previous, call in zip(ctx.calls, ctx.calls[1:]):
        masks, start = call["masks"], call["start"]
        for name, mask in masks.items():
            assert not bool((mask & ~previous["masks"][name]).any()), name  # never revived
        for key, value in start.items():
            name = key.removesuffix(".weight")
            if key.endswith(".mask"):
                continue
            if name in masks:  # survivors: the snapshot's values; pruned: zero
                assert torch.equal(value[masks[name]], snapshot[key][masks[name]]), key
                assert bool((value[~masks[name]] == 0).all()), key
            else:  # biases, BN affine, running_mean/var, num_batches_tracked
                assert torch.equal(value, snapshot[key]), key
    for _, layer in prunable_layers(model):
        assert torch.equal(layer.weight != 0, layer.mask.bool())


# ---------------------------------------------------------------------------- the trainings


def _real_context(tmp_path, model, recipe, density):
    spec = RunSpec(method="lth", model="tiny", dataset="cifar10", density=density, seed=0,
                   recipe=recipe)
    return RunContext(spec=spec, model=model, data=synthetic_data(), recipe=recipe,
                      options=EngineOptions(eval_every=0), store=RunStore(tmp_path))


def _spy_on_optimisers(monkeypatch):
    """Each optimiser the engine makes, with per step (lr, whether any state existed)."""
    made: list[dict] = []
    real = engine.make_optimizer

    def spy(params, recipe, options):
        opt = real(params, recipe, options)
        record = {"steps": []}
        step = opt.step

        def recorded_step(*args, **kwargs):
            record["steps"].append((opt.param_groups[0]["lr"], any(opt.state.values())))
            return step(*args, **kwargs)

        opt.step = recorded_step
        made.append(record)
        return opt

    monkeypatch.setattr(engine, "make_optimizer", spy)
    return made


@pytest.mark.parametrize("retrain", ["full", "from-rewind"])
def test_every_training_gets_a_fresh_optimiser_and_its_schedule(tmp_path, monkeypatch, retrain):
    made = _spy_on_optimisers(monkeypatch)
    recipe = Recipe(epochs=3, batch_size=25, lr=0.05, schedule="multistep", milestones=(2,),
                    gamma=0.1, weight_decay=5e-4)
    ctx = _real_context(tmp_path, tiny_net(), recipe, density=0.64)
    LotteryTicket(LTHHparams(rewind_epoch=1, retrain=retrain)).run(ctx)
    phases = [p["phase"] for p in ctx.phases]
    spe = 4  # 100 images / 25
    if retrain == "full":
        assert phases == ["round0", "round1", "round2"]
        starts = [0, 0, 0]
    else:
        assert phases == ["rewind", "round0", "round1", "round2"]
        starts = [0, spe, spe, spe]  # open_lth: every training after the rewind starts at k
    assert len(made) == len(phases)
    for record, start, phase in zip(made, starts, ctx.phases):
        assert len(record["steps"]) == phase["steps"]
        assert record["steps"][0][1] is False  # no momentum buffers at a round's first step
        assert all(had for _, had in record["steps"][1:])
        expected = [recipe.lr * lr_factor(recipe, start + s, spe)
                    for s in range(len(record["steps"]))]
        assert [lr for lr, _ in record["steps"]] == pytest.approx(expected, rel=1e-12)
    total = sum(p["epochs"] for p in ctx.phases)
    last = ctx.phases[-1]["epochs"]
    assert ctx.search.extra_epochs == total - last
    spec = SimpleNamespace(density=0.64, recipe=recipe)
    assert LotteryTicket(LTHHparams(rewind_epoch=1, retrain=retrain)).planned_epochs(spec) == total


def test_from_rewind_needs_a_schedule_that_can_resume():
    assert resumed_recipe(Recipe(epochs=5), 0) == Recipe(epochs=5)
    multistep = Recipe(epochs=160, schedule="multistep", milestones=(80, 120), lr=0.1)
    resumed = resumed_recipe(multistep, 100)
    assert (resumed.epochs, resumed.milestones) == (60, (20,))
    assert resumed.lr == pytest.approx(0.01)
    for step in range(0, 60 * 3, 7):
        assert resumed.lr * lr_factor(resumed, step, 3) == pytest.approx(
            multistep.lr * lr_factor(multistep, step + 300, 3), rel=1e-12)
    spec = SimpleNamespace(density=0.5, recipe=Recipe(epochs=4, schedule="cosine"))
    with pytest.raises(BenchError, match="cosine"):
        LotteryTicket(LTHHparams(retrain="from-rewind")).check(spec, None)
    LotteryTicket(LTHHparams(retrain="from-rewind", rewind_epoch=0)).check(spec, None)
    LotteryTicket().check(spec, None)
    warm = SimpleNamespace(density=0.5, recipe=Recipe(epochs=4, schedule="constant",
                                                      warmup_epochs=2))
    with pytest.raises(BenchError, match="warm-up"):
        LotteryTicket(LTHHparams(retrain="from-rewind")).check(warm, None)
    whole = SimpleNamespace(density=0.5, recipe=Recipe(epochs=1, schedule="constant"))
    with pytest.raises(BenchError, match="leaves nothing"):
        LotteryTicket(LTHHparams(retrain="from-rewind")).check(whole, None)


def test_the_defaults_keep_run_keys_and_the_method_version():
    assert non_default_hparams(LTHHparams()) == {}
    defaults = {f.name: f.default for f in fields(LTHHparams)}
    assert defaults["prune_classifier"] is True
    assert defaults["count"] == "nearest" and defaults["retrain"] == "full"
    assert LotteryTicket.version == 1
    for bad in ({"count": "floor"}, {"retrain": "half"}):
        with pytest.raises(ValueError):
            LTHHparams(**bad)
