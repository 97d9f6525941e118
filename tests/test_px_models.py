"""What the PX authors' training starts from, against the PX presets: their settings, their
model classes on the suite's weights, their initial biases and their data pipeline.

From a checkout of iurada/px-ntk-pruning (``$BENCH_PX_CHECKOUT``; skipped without one).
tests/test_px_lockstep.py trains one model through both loops; these check the rest of what
their ``train_classification.py`` does before its loop runs.
"""

from __future__ import annotations

import inspect
import math
import sys

import pytest
import torch
import torch.nn.functional as F
from authors_code import authors_modules, checkout, relative_difference
from lockstep import masked
from torch import nn

from bench.data.datasets import DATASETS
from bench.models import build_model, prunable_layers
from bench.presets import RECIPES

pytestmark = pytest.mark.lockstep

MODULES = ["train_classification", "globals", "parse_args", "lib.layers",
           "lib.models.lottery_resnet", "lib.models.lottery_vgg", "datasets.utils",
           "datasets.CIFAR10.dataset", "datasets.CIFAR100.dataset"]
FORWARD, BACKWARD = 1e-5, 1e-4
"""Relative tolerances of one forward and backward pass of their model against the suite's on
the same weights and batch: their global pool is ``F.avg_pool2d(x, 8)``, the suite's an
adaptive one, whose sums round differently (measured: 2e-7 in the logits; batch norm's
backward takes the gradients to 5e-6)."""


@pytest.fixture(scope="module")
def px():
    with authors_modules(checkout("px"), MODULES) as modules:
        yield modules


def their_model(px, arch: str, classes: int) -> nn.Module:
    if arch == "resnet20":
        return px["lib.models.lottery_resnet"].resnet20(classes)
    return px["lib.models.lottery_vgg"].vgg16_bn(classes)


@pytest.mark.parametrize("name, dataset", [("px-resnet20", "CIFAR10"), ("px-vgg16", "CIFAR100")])
def test_the_px_recipes_are_the_authors_settings(px, monkeypatch, name, dataset):
    px["globals"].CONFIG.update(dataset=dataset, experiment_args={})
    experiment = px["train_classification"].Experiment.__new__(
        px["train_classification"].Experiment)
    experiment.model = nn.Linear(2, 2)
    with pytest.warns(Warning):  # their GradScaler: deprecated, and off without CUDA
        experiment._init_optimizers()
    optimizer, schedule, recipe = experiment.optimizer, experiment.scheduler, RECIPES[name]
    assert type(optimizer) is torch.optim.SGD and recipe.optimizer in ("sgd", "nesterov")
    defaults = optimizer.defaults
    assert (defaults["lr"], defaults["momentum"], defaults["weight_decay"], defaults["nesterov"],
            defaults["dampening"]) == (recipe.lr, recipe.momentum, recipe.weight_decay,
                                       recipe.optimizer == "nesterov", 0)
    assert type(schedule) is torch.optim.lr_scheduler.MultiStepLR and recipe.schedule == "multistep"
    assert tuple(sorted(schedule.milestones)) == recipe.milestones
    assert schedule.gamma == recipe.gamma
    assert type(experiment.loss_fn) is nn.CrossEntropyLoss and recipe.label_smoothing == 0
    assert experiment.loss_fn.reduction == "mean" and experiment.loss_fn.label_smoothing == 0
    monkeypatch.setattr(sys, "argv", ["main.py"])
    args = px["parse_args"].parse_arguments()
    assert (args.batch_size, args.epochs, args.grad_accum_steps) == (recipe.batch_size,
                                                                     recipe.epochs, 1)


class Recorder:
    """Stands for torchvision.transforms: each transform comes back as (name, args, kwargs)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: (name, args, kwargs)


@pytest.mark.parametrize("dataset", ["CIFAR10", "CIFAR100"])
def test_the_authors_data_pipeline(px, monkeypatch, dataset):
    """Their training transform is RandomCrop(32, padding=4) then a flip, the pixels of which
    tests/test_augment.py holds the suite's crop and flip to; their loader keeps each epoch's
    last, partial batch (the recipes' ``drop_last=False``). Their normalisation constants are
    the suite's rounded to three digits (a difference the suite keeps: see README)."""
    module = px[f"datasets.{dataset}.dataset"]
    monkeypatch.setattr(module, "T", Recorder())
    composed = module.get_transform(32, 4, (0.5,) * 3, (0.25,) * 3, preprocess=True)
    steps = [(name, args, kwargs) for name, args, kwargs in composed[1][0]]
    assert steps == [("Resize", ((32, 32),), {}), ("RandomCrop", (), {"size": 32, "padding": 4}),
                     ("RandomHorizontalFlip", (), {}), ("ToTensor", (), {}),
                     ("Normalize", ((0.5,) * 3, (0.25,) * 3), {})]
    loader = inspect.signature(px["datasets.utils"].SeededDataLoader.__init__)
    assert loader.parameters["drop_last"].default is False
    assert "drop_last" not in inspect.getsource(module.load_data)
    ours = DATASETS[dataset.lower()]
    assert "mean, std = " in inspect.getsource(module.load_data)
    constants = inspect.getsource(module.load_data).split("mean, std = ")[1].split("\n")[0]
    theirs = [float(v) for v in constants.replace("(", "").replace(")", "").split(",")]
    assert max(abs(a - b) for a, b in zip(theirs, (*ours.mean, *ours.std))) < 1e-3


@pytest.mark.parametrize("arch, classes", [("resnet20", 10), ("vgg16", 100)])
def test_their_models_compute_the_suite_models(px, cifar10_dir, arch, classes):
    """Their model holding the suite's initial weights and masks, masked their way (mask
    buffers, pruned weights left at their values: their ``Pruner.mask``), gives the suite
    model's logits and gradients on one batch, and has the same batch-norm settings."""
    model, dense = masked(arch, classes)
    theirs = their_model(px, arch, classes)
    state = theirs.state_dict()
    state.update({k: v for k, v in dense.items() if k in state})
    state.update({f"{n}.weight_mask": layer.mask for n, layer in prunable_layers(model)})
    theirs.load_state_dict(state)
    x = torch.randn(20, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    y = torch.arange(20) % classes
    ours, their_logits = model(x), theirs(x)
    assert relative_difference(their_logits, ours) < FORWARD
    F.cross_entropy(ours, y).backward()
    nn.CrossEntropyLoss()(their_logits, y).backward()
    their_params = dict(theirs.named_parameters())
    for name, p in model.named_parameters():
        assert relative_difference(their_params[name].grad, p.grad) < BACKWARD, name
    norms = [(m.eps, m.momentum, m.affine, m.track_running_stats) for m in model.modules()
             if isinstance(m, nn.BatchNorm2d)]
    assert norms == [(m.eps, m.momentum, m.affine, m.track_running_stats)
                     for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)]


def standardised_biases(model: nn.Module) -> torch.Tensor:
    """Every conv/linear bias over its bound 1/sqrt(fan_in), pooled."""
    return torch.cat([m.bias.detach().flatten() * math.sqrt(m.weight[0].numel())
                      for m in model.modules()
                      if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None])


@pytest.mark.parametrize("arch, classes", [("resnet20", 10), ("vgg16", 100)])
def test_their_initial_biases_are_the_uniform_option(px, arch, classes):
    """Their initialiser redraws weights only (Kaiming normal) and keeps torch's default
    biases, U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the recipes' ``bias_init="uniform"``. Batch
    norm starts at gamma 1, beta 0 on both sides."""
    torch.manual_seed(0)
    theirs = standardised_biases(their_model(px, arch, classes))
    ours = standardised_biases(build_model(arch, classes, seed=0, bias_init="uniform"))
    assert theirs.numel() == ours.numel() and (ours != 0).all() and (theirs != 0).all()
    for values in (theirs, ours):
        assert values.abs().max() <= 1
        if values.numel() > 1000:  # VGG: thousands of biases; uniform on [-1, 1]
            assert values.var().item() == pytest.approx(1 / 3, rel=0.1)
            assert abs(values.mean().item()) < 0.05
    assert not standardised_biases(build_model(arch, classes, seed=0)).any()  # suite default
    for m in their_model(px, arch, classes).modules():
        if isinstance(m, nn.BatchNorm2d):
            assert (m.weight == 1).all() and (m.bias == 0).all()
